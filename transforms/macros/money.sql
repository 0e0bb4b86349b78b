{#- Money as the marts show it: a decimal with `scale` places (2 for sums, 4 per voucher).
    dbt's type_numeric() has no precision or scale of our choosing, hence this macro. -#}
{% macro money(expression, scale=2) -%}
    cast({{ expression }} as decimal(18, {{ scale }}))
{%- endmacro %}
