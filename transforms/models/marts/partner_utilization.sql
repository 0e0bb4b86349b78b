-- one row per partner name (every partner, and any name purchases carry that matches no partner): voucher use and value

with

partners as (

    select * from {{ ref("int_partners") }}

),

purchase_totals as (

    select * from {{ ref("int_purchase_totals") }}
    where grouped_by = 'partner'

),

vouchers as (

    select * from {{ ref("voucher_status") }}

),

use_delays as (

    select
        partner_name,
        {{ median("days_purchase_to_use") }} as days_to_median_use

    from vouchers
    where days_purchase_to_use is not null
    group by partner_name

),

final as (

    select
        partners.partner_id,
        coalesce(partners.partner_name, purchase_totals.group_name) as partner_name,
        partners.partner_status,
        coalesce(purchase_totals.purchases, 0) as purchases,
        coalesce(purchase_totals.purchases_with_vouchers, 0) as purchases_with_vouchers,
        coalesce(purchase_totals.purchases_with_count_mismatch, 0) as purchases_with_count_mismatch,
        coalesce(purchase_totals.vouchers_issued, 0) as vouchers_issued,
        coalesce(purchase_totals.vouchers_used, 0) as vouchers_used,
        coalesce(purchase_totals.vouchers_assigned_unused, 0) as vouchers_assigned_unused,
        coalesce(purchase_totals.vouchers_reserved, 0) as vouchers_reserved,
        coalesce(purchase_totals.vouchers_unassigned, 0) as vouchers_unassigned,
        coalesce(purchase_totals.vouchers_expired_unused, 0) as vouchers_expired_unused,
        coalesce(purchase_totals.vouchers_deactivated, 0) as vouchers_deactivated,
        cast(
            1.0 * purchase_totals.vouchers_used / nullif(purchase_totals.vouchers_issued, 0)
            as decimal(9, 4)
        ) as utilization_rate,
        cast(use_delays.days_to_median_use as decimal(9, 1)) as days_to_median_use,
        {{ money("coalesce(purchase_totals.amount_paid, 0)") }} as amount_paid,
        {{ money("coalesce(purchase_totals.value_issued, 0)") }} as value_issued,
        {{ money("coalesce(purchase_totals.value_used, 0)") }} as value_used,
        {{ money("coalesce(purchase_totals.value_redeemable, 0)") }} as value_redeemable,
        {{ money("coalesce(purchase_totals.value_expired_unused, 0)") }} as value_expired_unused,
        {{ money("coalesce(purchase_totals.value_deactivated, 0)") }} as value_deactivated

    from partners
    full outer join purchase_totals
        on partners.partner_name = purchase_totals.group_name
    left join use_delays
        on coalesce(partners.partner_name, purchase_totals.group_name) = use_delays.partner_name

)

select * from final
