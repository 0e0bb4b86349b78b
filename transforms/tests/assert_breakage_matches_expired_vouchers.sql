-- Breakage in voucher_utilization (sums per purchase, rounded to cents) equals the value of the
-- expired vouchers in voucher_expiry (4 decimals each) within half a cent per purchase.

-- Dagster shows this test as a check on one model (dagster-dbt needs it named when a test reads several).
{{ config(meta={"dagster": {"ref": {"name": "voucher_utilization"}}}) }}

with

per_purchase as (

    select
        coalesce(sum(value_expired_unused), 0) as breakage,
        count(*) as purchases

    from {{ ref("voucher_utilization") }}

),

per_voucher as (

    select coalesce(sum(value_at_risk), 0) as breakage
    from {{ ref("voucher_expiry") }}
    where is_expired

)

select
    per_purchase.breakage as breakage_by_purchase,
    per_voucher.breakage as breakage_by_voucher

from per_purchase
cross join per_voucher
where abs(per_purchase.breakage - per_voucher.breakage) > 0.005 * per_purchase.purchases
