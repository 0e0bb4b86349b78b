-- one row per expiry month, partner and program: unused, active vouchers expiring (or expired) that month and their value

with

vouchers as (

    select * from {{ ref("voucher_expiry") }}

),

final as (

    select
        expiry_month,
        partner_id,
        partner_name,
        program_id,
        program_name,
        count(*) as vouchers_expiring,
        count(*) filter (where is_expired) as vouchers_expired,
        count(*) filter (where is_assigned) as vouchers_assigned,
        count(*) filter (where is_reserved) as vouchers_reserved,
        cast(sum(value_at_risk) as decimal(18, 2)) as value_expiring,
        cast(coalesce(sum(value_at_risk) filter (where is_expired), 0) as decimal(18, 2)) as value_expired

    from vouchers
    group by
        expiry_month,
        partner_id,
        partner_name,
        program_id,
        program_name

)

select * from final
