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
        count(*) filter (where voucher_status = 'used') as vouchers_used,
        count(*) filter (where voucher_status = 'assigned_unused') as vouchers_assigned_unused,
        count(*) filter (where voucher_status = 'reserved') as vouchers_reserved,
        count(*) filter (where voucher_status = 'unassigned') as vouchers_unassigned,
        count(*) filter (where voucher_status = 'expired_unused') as vouchers_expired_unused,
        count(*) filter (where voucher_status = 'deactivated') as vouchers_deactivated,
        min(days_purchase_to_use) as days_to_first_use,
        percentile_cont(0.5) within group (order by days_purchase_to_use) as days_to_median_use,
        max(days_purchase_to_use) as days_to_last_use,
        sum(voucher_value) as value_issued,
        sum(voucher_value) filter (where voucher_status = 'used') as value_used,
        sum(voucher_value) filter (
            where voucher_status in ('assigned_unused', 'reserved', 'unassigned')
        ) as value_redeemable,
        sum(voucher_value) filter (where voucher_status = 'expired_unused') as value_expired_unused,
        sum(voucher_value) filter (where voucher_status = 'deactivated') as value_deactivated

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
        voucher_counts.days_to_first_use,
        voucher_counts.days_to_median_use,
        voucher_counts.days_to_last_use,
        coalesce(voucher_counts.value_issued, 0) as value_issued,
        coalesce(voucher_counts.value_used, 0) as value_used,
        coalesce(voucher_counts.value_redeemable, 0) as value_redeemable,
        coalesce(voucher_counts.value_expired_unused, 0) as value_expired_unused,
        coalesce(voucher_counts.value_deactivated, 0) as value_deactivated

    from purchases
    left join voucher_counts
        on purchases.purchase_code = voucher_counts.purchase_code

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
        cast(1.0 * vouchers_used / nullif(vouchers_issued, 0) as decimal(9, 4)) as utilization_rate,
        days_to_first_use,
        cast(days_to_median_use as decimal(9, 1)) as days_to_median_use,
        days_to_last_use,
        amount_paid,
        cast(value_issued as decimal(18, 2)) as value_issued,
        cast(value_used as decimal(18, 2)) as value_used,
        cast(value_redeemable as decimal(18, 2)) as value_redeemable,
        cast(value_expired_unused as decimal(18, 2)) as value_expired_unused,
        cast(value_deactivated as decimal(18, 2)) as value_deactivated,
        quantity_used_reported,
        quantity_remaining_reported,
        -- a counter the purchase does not report counts as a disagreement
        coalesce(quantity_used_reported, -1) <> vouchers_used
            or coalesce(quantity_remaining_reported, -1) <> vouchers_issued - vouchers_used as has_count_mismatch

    from joined

)

select * from final
