-- one row per month from the first to the last in which an unused, not deactivated voucher expires (months without one included): what expired unused and what is still redeemable

with

vouchers as (

    select * from {{ ref("voucher_expiry") }}

),

monthly as (

    select
        expiry_month,
        count(*) as vouchers_expiring,
        count(case when is_expired then 1 end) as vouchers_expired_unused,
        count(case when not is_expired then 1 end) as vouchers_redeemable,
        count(case when voucher_status = 'reserved' then 1 end) as vouchers_reserved,
        count(case when voucher_status = 'assigned_unused' then 1 end) as vouchers_assigned_unused,
        count(case when voucher_status = 'unassigned' then 1 end) as vouchers_unassigned,
        sum(value_at_risk) as value_expiring,
        {{ breakage("value_at_risk", "is_expired") }} as value_expired_unused,
        coalesce(sum(case when not is_expired then value_at_risk end), 0) as value_redeemable

    from vouchers
    group by expiry_month

),

bounds as (

    select
        min(expiry_month) as first_month,
        max(expiry_month) as last_month

    from monthly

),

-- the calendar, and any month of the data beyond it (union all and distinct: BigQuery has no bare union)
month_candidates as (

    {{ month_spine("bounds", "first_month", "last_month") }}

    union all

    select expiry_month as month
    from monthly

),

months as (

    select distinct month
    from month_candidates

),

final as (

    select
        months.month as expiry_month,
        coalesce(monthly.vouchers_expiring, 0) as vouchers_expiring,
        coalesce(monthly.vouchers_expired_unused, 0) as vouchers_expired_unused,
        coalesce(monthly.vouchers_redeemable, 0) as vouchers_redeemable,
        coalesce(monthly.vouchers_reserved, 0) as vouchers_reserved,
        coalesce(monthly.vouchers_assigned_unused, 0) as vouchers_assigned_unused,
        coalesce(monthly.vouchers_unassigned, 0) as vouchers_unassigned,
        {{ money("coalesce(monthly.value_expiring, 0)") }} as value_expiring,
        {{ money("coalesce(monthly.value_expired_unused, 0)") }} as value_expired_unused,
        {{ money("coalesce(monthly.value_redeemable, 0)") }} as value_redeemable

    from months
    left join monthly
        on months.month = monthly.expiry_month

)

select * from final
