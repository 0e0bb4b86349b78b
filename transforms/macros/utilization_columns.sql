{#- The sums partner_utilization and program_utilization both show, over the rows of
    voucher_utilization (`purchases`) grouped by `group_column` (partner_name or program_name). -#}
{% macro purchase_totals(group_column, purchases="purchases") -%}
    select
        {{ group_column }} as group_name,
        count(*) as purchases,
        count(case when vouchers_issued > 0 then 1 end) as purchases_with_vouchers,
        count(case when has_count_mismatch then 1 end) as purchases_with_count_mismatch,
        count(case when is_idle then 1 end) as purchases_idle,
        cast(sum(vouchers_issued) as {{ dbt.type_bigint() }}) as vouchers_issued,
        cast(sum(vouchers_used) as {{ dbt.type_bigint() }}) as vouchers_used,
        cast(sum(vouchers_assigned_unused) as {{ dbt.type_bigint() }}) as vouchers_assigned_unused,
        cast(sum(vouchers_reserved) as {{ dbt.type_bigint() }}) as vouchers_reserved,
        cast(sum(vouchers_unassigned) as {{ dbt.type_bigint() }}) as vouchers_unassigned,
        cast(sum(vouchers_expired_unused) as {{ dbt.type_bigint() }}) as vouchers_expired_unused,
        cast(sum(vouchers_deactivated) as {{ dbt.type_bigint() }}) as vouchers_deactivated,
        cast(sum(vouchers_redeemable) as {{ dbt.type_bigint() }}) as vouchers_redeemable,
        sum(amount_paid) as amount_paid,
        sum(value_issued) as value_issued,
        sum(value_used) as value_used,
        sum(value_redeemable) as value_redeemable,
        sum(value_expired_unused) as value_expired_unused,
        sum(value_deactivated) as value_deactivated

    from {{ purchases }}
    group by {{ group_column }}
{%- endmacro %}

{#- The columns partner_utilization and program_utilization both show for a group of purchases:
    the sums of purchase_totals (zero for a partner or program without purchases), the share
    used, the median days to use, and the money. `totals` and `delays` name the joined relations. -#}
{% macro utilization_columns(totals="purchase_totals", delays="use_delays") -%}
        coalesce({{ totals }}.purchases, 0) as purchases,
        coalesce({{ totals }}.purchases_with_vouchers, 0) as purchases_with_vouchers,
        coalesce({{ totals }}.purchases_with_count_mismatch, 0) as purchases_with_count_mismatch,
        coalesce({{ totals }}.purchases_idle, 0) as purchases_idle,
        coalesce({{ totals }}.vouchers_issued, 0) as vouchers_issued,
        coalesce({{ totals }}.vouchers_used, 0) as vouchers_used,
        coalesce({{ totals }}.vouchers_assigned_unused, 0) as vouchers_assigned_unused,
        coalesce({{ totals }}.vouchers_reserved, 0) as vouchers_reserved,
        coalesce({{ totals }}.vouchers_unassigned, 0) as vouchers_unassigned,
        coalesce({{ totals }}.vouchers_expired_unused, 0) as vouchers_expired_unused,
        coalesce({{ totals }}.vouchers_deactivated, 0) as vouchers_deactivated,
        coalesce({{ totals }}.vouchers_redeemable, 0) as vouchers_redeemable,
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
