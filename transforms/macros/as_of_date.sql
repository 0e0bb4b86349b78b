{#- The date expiry and day counts are judged against: var `as_of` (YYYY-MM-DD), else today in the
    reporting time zone. -#}
{% macro as_of_date() -%}
    {%- set as_of = var("as_of", none) -%}
    {%- if as_of -%}
        {%- if not modules.re.fullmatch("[0-9]{4}-[0-9]{2}-[0-9]{2}", as_of | string) -%}
            {{ exceptions.raise_compiler_error("var as_of must be a YYYY-MM-DD date, got " ~ as_of) }}
        {%- endif -%}
        cast('{{ as_of }}' as date)
    {%- else -%}
        {{ local_date("current_timestamp") }}
    {%- endif -%}
{%- endmacro %}
