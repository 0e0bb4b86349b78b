{#- Whole days from one date to another (negative when `end_date` is earlier), as an integer:
    dbt's datediff returns a bigint on DuckDB and an integer on Postgres. -#}
{% macro days_between(start_date, end_date) -%}
    cast({{ dbt.datediff(start_date, end_date, "day") }} as integer)
{%- endmacro %}

{#- The reporting time zone (var `certiverse_timezone`, an IANA name such as `America/New_York`;
    default UTC): every date and month the marts derive from a timestamp is its calendar date
    there. `certiverse transform` sets it from `[marts] timezone` (env MARTS__TIMEZONE). The name
    goes into SQL as a literal, so only the characters of time zone names pass. -#}
{% macro reporting_timezone() -%}
    {%- set timezone = var("certiverse_timezone", "UTC") | string -%}
    {%- if not modules.re.fullmatch("[A-Za-z][A-Za-z0-9_+/-]*", timezone) -%}
        {{ exceptions.raise_compiler_error("var certiverse_timezone must be a time zone name such as America/New_York, got " ~ timezone) }}
    {%- endif -%}
    {{ return(timezone) }}
{%- endmacro %}

{#- The calendar date of a timestamp (with time zone) in the reporting time zone. dbt has no
    cross-database macro for it; the default is standard SQL (DuckDB with its ICU extension,
    which the duckdb wheel links in, Postgres, Databricks), and dispatch lets an adapter put its
    own. -#}
{% macro local_date(timestamp) -%}
    {{ return(adapter.dispatch("local_date", "certiverse")(timestamp)) }}
{%- endmacro %}

{% macro default__local_date(timestamp) -%}
    cast({{ timestamp }} at time zone '{{ reporting_timezone() }}' as date)
{%- endmacro %}

{% macro snowflake__local_date(timestamp) -%}
    cast(convert_timezone('{{ reporting_timezone() }}', {{ timestamp }}) as date)
{%- endmacro %}

{% macro bigquery__local_date(timestamp) -%}
    date({{ timestamp }}, '{{ reporting_timezone() }}')
{%- endmacro %}

{#- The first day of the month of a date, as a date. -#}
{% macro month_of(date) -%}
    cast({{ dbt.date_trunc("month", date) }} as date)
{%- endmacro %}

{#- Every month from `first_month` to `last_month` (first days of months, SQL expressions over
    `relation`, which has one row), one row each as `month`: a calendar without gaps for the
    monthly marts. At most 1,200 months (a century); the marts add the months of their data to
    it, so data beyond a century would show without its gaps filled rather than be lost. -#}
{% macro month_spine(relation, first_month, last_month) -%}
    select
        {{ month_of(dbt.dateadd("month", "series.generated_number - 1", relation ~ "." ~ first_month)) }} as month

    from ({{ dbt.generate_series(1200) }}) as series
    cross join {{ relation }}
    where {{ dbt.dateadd("month", "series.generated_number - 1", relation ~ "." ~ first_month) }}
        <= {{ relation }}.{{ last_month }}
{%- endmacro %}
