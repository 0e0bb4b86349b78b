-- voucher_expiry lists every unused, not deactivated voucher of voucher_status, and
-- expiry_calendar adds up to voucher_expiry. Returns a row when the counts disagree.

-- Dagster shows this test as a check on one model (dagster-dbt needs it named when a test reads several).
{{ config(meta={"dagster": {"ref": {"name": "voucher_expiry"}}}) }}

with

unused as (

    select
        count(*) as vouchers,
        count(case when voucher_status = 'expired_unused' then 1 end) as expired

    from {{ ref("voucher_status") }}
    where voucher_status in ('expired_unused', 'reserved', 'assigned_unused', 'unassigned')

),

expiry as (

    select
        count(*) as vouchers,
        count(case when is_expired then 1 end) as expired

    from {{ ref("voucher_expiry") }}

),

calendar as (

    select
        coalesce(sum(vouchers_expiring), 0) as vouchers,
        coalesce(sum(vouchers_expired), 0) as expired

    from {{ ref("expiry_calendar") }}

)

select
    unused.vouchers as unused_vouchers,
    expiry.vouchers as expiry_vouchers,
    calendar.vouchers as calendar_vouchers

from unused
cross join expiry
cross join calendar
where unused.vouchers <> expiry.vouchers
    or unused.expired <> expiry.expired
    or expiry.vouchers <> calendar.vouchers
    or expiry.expired <> calendar.expired
