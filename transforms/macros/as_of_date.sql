{#- The date expiry and day counts are judged against: var `as_of` (YYYY-MM-DD) when given (dbt by
    hand); else the date `certiverse transform` wrote for this build into the one-row table
    `_certiverse_as_of` of the raw tables' schema; else today in the reporting time zone.
    Why a table and not a var: dbt re-parses the whole project whenever a var changes, and the
    as-of date changes every night; the table is read when a model is compiled (`execute`), so
    a night's build reuses the last parse. Either way the SQL gets a date literal. -#}
{% macro as_of_date() -%}
    {%- set as_of = var("as_of", none) or (execute and build_as_of_date()) -%}
    {%- if as_of -%}
        {%- if not modules.re.fullmatch("[0-9]{4}-[0-9]{2}-[0-9]{2}", as_of | string) -%}
            {{ exceptions.raise_compiler_error("var as_of must be a YYYY-MM-DD date, got " ~ as_of) }}
        {%- endif -%}
        cast('{{ as_of }}' as date)
    {%- else -%}
        {{ local_date("current_timestamp") }}
    {%- endif -%}
{%- endmacro %}

{#- The date in `_certiverse_as_of` (written by `certiverse transform` before dbt starts, dropped
    after), as YYYY-MM-DD; none when the table is not there. Only call it when `execute` is true. -#}
{% macro build_as_of_date() -%}
    {%- set relation = adapter.get_relation(
        database=target.database,
        schema=var("certiverse_schema", target.schema),
        identifier="_certiverse_as_of"
    ) -%}
    {%- if relation is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set found = run_query("select cast(as_of_date as varchar) from " ~ relation) -%}
    {{ return(found.columns[0].values()[0] if found.rows | length == 1 else none) }}
{%- endmacro %}
