-- one row per idle purchase (redeemable vouchers, none used in the idle period up to the as-of date, not bought in it), ranked by redeemable value

with

purchases as (

    select * from {{ ref("voucher_utilization") }}

),

idle as (

    select * from purchases
    where is_idle

),

final as (

    select
        purchase_id,
        row_number() over (
            order by value_redeemable desc, vouchers_redeemable desc, purchase_code
        ) as idle_rank,
        purchase_code,
        partner_id,
        partner_name,
        program_id,
        program_name,
        purchased_on,
        vouchers_issued,
        vouchers_redeemable,
        value_redeemable,
        last_used_on,
        days_idle,
        next_expiry_on,
        {{ as_of_date() }} as as_of_date

    from idle

)

select * from final
