-- one row per as-of date (the table holds one row): the figures the run summary, its JSON and the report lead with

with

vouchers as (

    select * from {{ ref("voucher_status") }}

),

purchases as (

    select * from {{ ref("voucher_utilization") }}

),

unused as (

    select * from {{ ref("voucher_expiry") }}

),

voucher_totals as (

    select
        count(*) as vouchers_issued,
        count(case when voucher_status = 'used' then 1 end) as vouchers_used,
        count(case when is_redeemable then 1 end) as vouchers_redeemable,
        count(case when voucher_status = 'expired_unused' then 1 end) as vouchers_expired_unused,
        count(case when voucher_status = 'deactivated' then 1 end) as vouchers_deactivated

    from vouchers

),

purchase_totals as (

    select
        count(*) as purchases,
        count(case when is_idle then 1 end) as purchases_idle,
        coalesce(sum(amount_paid), 0) as amount_paid,
        coalesce(sum(value_used), 0) as value_used,
        coalesce(sum(value_redeemable), 0) as value_redeemable,
        coalesce(sum(value_expired_unused), 0) as value_expired_unused,
        coalesce(sum(case when is_idle then value_redeemable end), 0) as value_idle

    from purchases

),

-- redeemable vouchers by how soon they expire: from the as-of date (0 days left) on
expiring as (

    select
        count(case when days_left between 0 and 30 then 1 end) as vouchers_expiring_30_days,
        coalesce(sum(case when days_left between 0 and 30 then value_at_risk end), 0) as value_expiring_30_days,
        count(case when days_left between 0 and 90 then 1 end) as vouchers_expiring_90_days,
        coalesce(sum(case when days_left between 0 and 90 then value_at_risk end), 0) as value_expiring_90_days,
        count(case when days_left between 0 and 90 and is_assigned then 1 end) as vouchers_assigned_expiring_90_days

    from unused

),

final as (

    select
        {{ as_of_date() }} as as_of_date,
        cast('{{ reporting_timezone() }}' as {{ dbt.type_string() }}) as reporting_timezone,
        {{ idle_after_days() }} as idle_after_days,
        purchase_totals.purchases,
        voucher_totals.vouchers_issued,
        voucher_totals.vouchers_used,
        voucher_totals.vouchers_redeemable,
        voucher_totals.vouchers_expired_unused,
        voucher_totals.vouchers_deactivated,
        cast(
            1.0 * voucher_totals.vouchers_used / nullif(voucher_totals.vouchers_issued, 0)
            as decimal(9, 4)
        ) as utilization_rate,
        {{ money("purchase_totals.amount_paid") }} as amount_paid,
        {{ money("purchase_totals.value_used") }} as value_used,
        {{ money("purchase_totals.value_redeemable") }} as value_redeemable,
        {{ money("purchase_totals.value_expired_unused") }} as value_expired_unused,
        purchase_totals.purchases_idle,
        {{ money("purchase_totals.value_idle") }} as value_idle,
        expiring.vouchers_expiring_30_days,
        {{ money("expiring.value_expiring_30_days") }} as value_expiring_30_days,
        expiring.vouchers_expiring_90_days,
        {{ money("expiring.value_expiring_90_days") }} as value_expiring_90_days,
        expiring.vouchers_assigned_expiring_90_days,
        cast(
            1.0 * expiring.vouchers_assigned_expiring_90_days / nullif(expiring.vouchers_expiring_90_days, 0)
            as decimal(9, 4)
        ) as assigned_share_expiring_90_days

    from voucher_totals
    cross join purchase_totals
    cross join expiring

)

select * from final
