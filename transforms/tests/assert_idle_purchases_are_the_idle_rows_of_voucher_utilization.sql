-- idle_purchases holds exactly the purchases voucher_utilization flags idle, each with redeemable
-- vouchers and idle longer than the threshold, ranked 1 to n. Returns a row when it does not.
-- Dagster shows this test as a check on one model (dagster-dbt needs it named when a test reads several).
{{ config(meta={"dagster": {"ref": {"name": "idle_purchases"}}}) }}

with

idle as (

    select
        count(*) as purchases,
        coalesce(max(idle_rank), 0) as last_rank,
        count(case when vouchers_redeemable <= 0 or days_idle <= {{ idle_after_days() }} then 1 end) as not_idle

    from {{ ref("idle_purchases") }}

),

flagged as (

    select count(*) as purchases
    from {{ ref("voucher_utilization") }}
    where is_idle

)

select
    idle.purchases as idle_purchases,
    flagged.purchases as flagged_purchases

from idle
cross join flagged
where idle.purchases <> flagged.purchases
    or idle.last_rank <> idle.purchases
    or idle.not_idle > 0
