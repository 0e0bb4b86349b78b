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
        count(case when is_expired then 1 end) as vouchers_expired,
        count(case when is_assigned then 1 end) as vouchers_assigned,
        count(case when is_reserved then 1 end) as vouchers_reserved,
        {{ money("sum(value_at_risk)") }} as value_expiring,
        {{ money(breakage("value_at_risk", "is_expired")) }} as value_expired

    from vouchers
    group by
        expiry_month,
        partner_id,
        partner_name,
        program_id,
        program_name

)

select * from final
