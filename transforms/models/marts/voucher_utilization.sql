-- one row per purchase: how its vouchers were used, what they were worth, and whether the purchase's own counters agree

with

purchases as (

    select * from {{ ref("int_purchases") }}

),

vouchers as (

    select * from {{ ref("voucher_status") }}

),

voucher_counts as (

    select
        purchase_code,
        count(*) as vouchers_issued,
        count(case when voucher_status = 'used' then 1 end) as vouchers_used,
        count(case when voucher_status = 'assigned_unused' then 1 end) as vouchers_assigned_unused,
        count(case when voucher_status = 'reserved' then 1 end) as vouchers_reserved,
        count(case when voucher_status = 'unassigned' then 1 end) as vouchers_unassigned,
        count(case when voucher_status = 'expired_unused' then 1 end) as vouchers_expired_unused,
        count(case when voucher_status = 'deactivated' then 1 end) as vouchers_deactivated,
        count(case when is_redeemable then 1 end) as vouchers_redeemable,
        min(days_purchase_to_use) as days_to_first_use,
        {{ median("days_purchase_to_use") }} as days_to_median_use,
        max(days_purchase_to_use) as days_to_last_use,
        max(used_on) as last_used_on,
        min(case when is_redeemable then expires_on end) as next_expiry_on,
        sum(voucher_value) as value_issued,
        sum(case when voucher_status = 'used' then voucher_value end) as value_used,
        sum(case when is_redeemable then voucher_value end) as value_redeemable,
        {{ breakage() }} as value_expired_unused,
        sum(case when voucher_status = 'deactivated' then voucher_value end) as value_deactivated

    from vouchers
    where purchase_code is not null
    group by purchase_code

),

joined as (

    select
        purchases.*,
        coalesce(voucher_counts.vouchers_issued, 0) as vouchers_issued,
        coalesce(voucher_counts.vouchers_used, 0) as vouchers_used,
        coalesce(voucher_counts.vouchers_assigned_unused, 0) as vouchers_assigned_unused,
        coalesce(voucher_counts.vouchers_reserved, 0) as vouchers_reserved,
        coalesce(voucher_counts.vouchers_unassigned, 0) as vouchers_unassigned,
        coalesce(voucher_counts.vouchers_expired_unused, 0) as vouchers_expired_unused,
        coalesce(voucher_counts.vouchers_deactivated, 0) as vouchers_deactivated,
        coalesce(voucher_counts.vouchers_redeemable, 0) as vouchers_redeemable,
        voucher_counts.days_to_first_use,
        voucher_counts.days_to_median_use,
        voucher_counts.days_to_last_use,
        voucher_counts.last_used_on,
        voucher_counts.next_expiry_on,
        coalesce(voucher_counts.value_issued, 0) as value_issued,
        coalesce(voucher_counts.value_used, 0) as value_used,
        coalesce(voucher_counts.value_redeemable, 0) as value_redeemable,
        coalesce(voucher_counts.value_expired_unused, 0) as value_expired_unused,
        coalesce(voucher_counts.value_deactivated, 0) as value_deactivated

    from purchases
    left join voucher_counts
        on purchases.purchase_code = voucher_counts.purchase_code

),

activity as (

    select
        joined.*,
        {{ days_idle() }} as days_idle

    from joined

),

final as (

    select
        purchase_id,
        purchase_code,
        partner_id,
        partner_name,
        program_id,
        program_name,
        purchased_at,
        purchased_on,
        purchase_status,
        is_archived,
        quantity,
        vouchers_issued,
        vouchers_used,
        vouchers_assigned_unused,
        vouchers_reserved,
        vouchers_unassigned,
        vouchers_expired_unused,
        vouchers_deactivated,
        vouchers_redeemable,
        cast(1.0 * vouchers_used / nullif(vouchers_issued, 0) as decimal(9, 4)) as utilization_rate,
        days_to_first_use,
        cast(days_to_median_use as decimal(9, 1)) as days_to_median_use,
        days_to_last_use,
        last_used_on,
        next_expiry_on,
        days_idle,
        {{ is_idle() }} as is_idle,
        amount_paid,
        {{ money("value_issued") }} as value_issued,
        {{ money("value_used") }} as value_used,
        {{ money("value_redeemable") }} as value_redeemable,
        {{ money("value_expired_unused") }} as value_expired_unused,
        {{ money("value_deactivated") }} as value_deactivated,
        quantity_used_reported,
        quantity_remaining_reported,
        -- a counter the purchase does not report counts as a disagreement
        coalesce(quantity_used_reported, -1) <> vouchers_used
            or coalesce(quantity_remaining_reported, -1) <> vouchers_issued - vouchers_used as has_count_mismatch

    from activity

)

select * from final
