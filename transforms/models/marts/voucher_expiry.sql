-- one row per voucher that is unused and not deactivated: when it expires and what is at stake

with

vouchers as (

    select * from {{ ref("voucher_status") }}

),

unused as (

    select * from vouchers
    where is_expired_unused or is_redeemable

),

final as (

    select
        voucher_id,
        voucher_code,
        purchase_code,
        partner_id,
        partner_name,
        program_id,
        program_name,
        exam_code,
        exam_name,
        voucher_status,
        expires_at,
        expires_on,
        {{ month_of("expires_on") }} as expiry_month,
        days_until_expiry as days_left,
        case
            when is_expired_unused then 'expired'
            when days_until_expiry <= 30 then '0-30 days'
            when days_until_expiry <= 60 then '31-60 days'
            when days_until_expiry <= 90 then '61-90 days'
            else 'over 90 days'
        end as expiry_bucket,
        case
            when is_expired_unused then 0
            when days_until_expiry <= 30 then 1
            when days_until_expiry <= 60 then 2
            when days_until_expiry <= 90 then 3
            else 4
        end as expiry_bucket_order,
        is_expired_unused as is_expired,
        is_assigned,
        is_reserved,
        recipient_email,
        voucher_value as value_at_risk,
        value_basis,
        as_of_date

    from unused

)

select * from final
