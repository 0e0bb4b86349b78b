{#- The median of a column within a group. dbt has no cross-database macro for it; the default
    (ordered-set aggregate) runs on DuckDB, Postgres, Snowflake, Redshift and Databricks. BigQuery
    has only the analytic form of percentile_cont, so it takes its approximate median there. -#}
{% macro median(expression) -%}
    {{ return(adapter.dispatch("median", "certiverse")(expression)) }}
{%- endmacro %}

{% macro default__median(expression) -%}
    percentile_cont(0.5) within group (order by {{ expression }})
{%- endmacro %}

{% macro bigquery__median(expression) -%}
    approx_quantiles({{ expression }}, 2)[offset(1)]
{%- endmacro %}
