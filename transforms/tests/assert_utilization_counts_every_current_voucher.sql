-- Reconciliation with the raw data: every current voucher is counted once, in voucher_utilization
-- (through its purchase) or, when its purchase is not loaded, only in voucher_status.
-- Returns a row when the counts disagree.

-- Dagster shows this test as a check on one model (dagster-dbt needs it named when a test reads several).
{{ config(meta={"dagster": {"ref": {"name": "voucher_utilization"}}}) }}

with

raw_vouchers as (

    select count(*) as vouchers
    from {{ source("certiverse", "vouchers") }}
    where _dlt_valid_to is null

),

counted as (

    select cast(sum(vouchers_issued) as {{ dbt.type_bigint() }}) as vouchers
    from {{ ref("voucher_utilization") }}

),

without_purchase as (

    select count(*) as vouchers
    from {{ ref("voucher_status") }}
    where purchase_id is null

),

voucher_status as (

    select count(*) as vouchers
    from {{ ref("voucher_status") }}

)

select
    raw_vouchers.vouchers as raw_vouchers,
    coalesce(counted.vouchers, 0) + without_purchase.vouchers as counted_vouchers,
    voucher_status.vouchers as voucher_status_rows

from raw_vouchers
cross join counted
cross join without_purchase
cross join voucher_status
where raw_vouchers.vouchers <> coalesce(counted.vouchers, 0) + without_purchase.vouchers
    or raw_vouchers.vouchers <> voucher_status.vouchers
