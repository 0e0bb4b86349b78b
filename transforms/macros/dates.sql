{#- Whole days from one date to another (negative when `end_date` is earlier), as an integer:
    dbt's datediff returns a bigint on DuckDB and an integer on Postgres. -#}
{% macro days_between(start_date, end_date) -%}
    cast({{ dbt.datediff(start_date, end_date, "day") }} as integer)
{%- endmacro %}

{#- The UTC calendar date of a timestamp. dbt has no cross-database macro for it; the default is
    standard SQL (DuckDB, Postgres, Databricks), and dispatch lets an adapter put its own. -#}
{% macro utc_date(timestamp) -%}
    {{ return(adapter.dispatch("utc_date", "certiverse")(timestamp)) }}
{%- endmacro %}

{% macro default__utc_date(timestamp) -%}
    cast({{ timestamp }} at time zone 'UTC' as date)
{%- endmacro %}

{% macro snowflake__utc_date(timestamp) -%}
    cast(convert_timezone('UTC', {{ timestamp }}) as date)
{%- endmacro %}

{% macro bigquery__utc_date(timestamp) -%}
    date({{ timestamp }}, 'UTC')
{%- endmacro %}
