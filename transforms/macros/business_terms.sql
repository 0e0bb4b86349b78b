{#- The purchase-level business terms, each defined here once (their words: models/docs.md).
    The voucher-level ones (the six statuses, redeemable, expired unused) are columns of
    int_voucher_states. -#}

{#- Breakage: the value of the vouchers that expired unused, summed over a group of vouchers;
    0 when none did. `value` and `is_expired_unused` name the columns of the rows summed. -#}
{% macro breakage(value="voucher_value", is_expired_unused="is_expired_unused") -%}
    coalesce(sum(case when {{ is_expired_unused }} then {{ value }} end), 0)
{%- endmacro %}

{#- Days a purchase has been idle on the as-of date: since the last use of one of its vouchers,
    or since it was bought if none was used. -#}
{% macro days_idle(last_used_on="last_used_on", purchased_on="purchased_on") -%}
    {{ days_between("coalesce(" ~ last_used_on ~ ", " ~ purchased_on ~ ")", as_of_date()) }}
{%- endmacro %}

{#- Idle: a purchase that still has redeemable vouchers, of which no voucher was used (and which
    was not bought) in the `certiverse_idle_days` days (var, default 90) up to the as-of date. -#}
{% macro is_idle(vouchers_redeemable="vouchers_redeemable", days_idle="days_idle") -%}
    coalesce({{ vouchers_redeemable }} > 0 and {{ days_idle }} > {{ idle_after_days() }}, false)
{%- endmacro %}

{#- The idle threshold in days (var `certiverse_idle_days`, default 90). -#}
{% macro idle_after_days() -%}
    {%- set days = var("certiverse_idle_days", 90) -%}
    {%- if not modules.re.fullmatch("[0-9]+", days | string) -%}
        {{ exceptions.raise_compiler_error("var certiverse_idle_days must be a whole number of days, got " ~ days) }}
    {%- endif -%}
    {{ return(days | int) }}
{%- endmacro %}
