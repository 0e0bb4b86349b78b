-- one row per voucher (current version): where it stands on the as-of date, and what it is worth

with

vouchers as (

    select * from {{ ref("int_voucher_states") }}

),

final as (

    select
        voucher_id,
        voucher_code,
        purchase_id,
        purchase_code,
        partner_id,
        partner_name,
        program_id,
        program_name,
        exam_code,
        exam_name,
        voucher_status,
        is_redeemable,
        is_used,
        is_active,
        is_assigned,
        recipient_email,
        is_reserved,
        is_expired_unused,
        purchased_on,
        assigned_on,
        used_on,
        expires_at,
        expires_on,
        days_until_expiry,
        days_purchase_to_use,
        voucher_value,
        value_basis,
        as_of_date

    from vouchers

)

select * from final
