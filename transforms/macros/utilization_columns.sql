{#- The columns partner_utilization and program_utilization both show for a group of purchases:
    the sums of int_purchase_totals (zero for a partner or program without purchases), the share
    used, the median days to use, and the money. `totals` and `delays` name the joined relations. -#}
{% macro utilization_columns(totals="purchase_totals", delays="use_delays") -%}
        coalesce({{ totals }}.purchases, 0) as purchases,
        coalesce({{ totals }}.purchases_with_vouchers, 0) as purchases_with_vouchers,
        coalesce({{ totals }}.purchases_with_count_mismatch, 0) as purchases_with_count_mismatch,
        coalesce({{ totals }}.vouchers_issued, 0) as vouchers_issued,
        coalesce({{ totals }}.vouchers_used, 0) as vouchers_used,
        coalesce({{ totals }}.vouchers_assigned_unused, 0) as vouchers_assigned_unused,
        coalesce({{ totals }}.vouchers_reserved, 0) as vouchers_reserved,
        coalesce({{ totals }}.vouchers_unassigned, 0) as vouchers_unassigned,
        coalesce({{ totals }}.vouchers_expired_unused, 0) as vouchers_expired_unused,
        coalesce({{ totals }}.vouchers_deactivated, 0) as vouchers_deactivated,
        cast(
            1.0 * {{ totals }}.vouchers_used / nullif({{ totals }}.vouchers_issued, 0)
            as decimal(9, 4)
        ) as utilization_rate,
        cast({{ delays }}.days_to_median_use as decimal(9, 1)) as days_to_median_use,
        {{ money("coalesce(" ~ totals ~ ".amount_paid, 0)") }} as amount_paid,
        {{ money("coalesce(" ~ totals ~ ".value_issued, 0)") }} as value_issued,
        {{ money("coalesce(" ~ totals ~ ".value_used, 0)") }} as value_used,
        {{ money("coalesce(" ~ totals ~ ".value_redeemable, 0)") }} as value_redeemable,
        {{ money("coalesce(" ~ totals ~ ".value_expired_unused, 0)") }} as value_expired_unused,
        {{ money("coalesce(" ~ totals ~ ".value_deactivated, 0)") }} as value_deactivated
{%- endmacro %}
