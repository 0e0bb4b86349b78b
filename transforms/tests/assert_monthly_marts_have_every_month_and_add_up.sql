-- redemptions_by_month and expiry_by_month have a row for every month between their first and
-- last (none missing, none twice), and add up: every current raw voucher that is used and has a
-- use date once in redemptions_by_month, every row of voucher_expiry once in expiry_by_month.
-- Returns the mart that does not.
-- Dagster shows this test as a check on one model (dagster-dbt needs it named when a test reads several).
{{ config(meta={"dagster": {"ref": {"name": "redemptions_by_month"}}}) }}

with

raw_used as (

    select count(*) as vouchers
    from {{ source("certiverse", "vouchers") }}
    where _dlt_valid_to is null
        and is_used
        and used_by__used_date_utc is not null

),

unused as (

    select
        count(*) as vouchers,
        count(case when is_expired then 1 end) as expired

    from {{ ref("voucher_expiry") }}

),

redemptions as (

    select
        'redemptions_by_month' as mart,
        count(*) as months,
        coalesce({{ dbt.datediff("min(used_month)", "max(used_month)", "month") }} + 1, 0) as months_spanned,
        coalesce(sum(vouchers_used), 0) as vouchers,
        0 as expired

    from {{ ref("redemptions_by_month") }}

),

expiries as (

    select
        'expiry_by_month' as mart,
        count(*) as months,
        coalesce({{ dbt.datediff("min(expiry_month)", "max(expiry_month)", "month") }} + 1, 0) as months_spanned,
        coalesce(sum(vouchers_expiring), 0) as vouchers,
        coalesce(sum(vouchers_expired_unused), 0) as expired

    from {{ ref("expiry_by_month") }}

)

select redemptions.*
from redemptions
cross join raw_used
where redemptions.months <> redemptions.months_spanned
    or redemptions.vouchers <> raw_used.vouchers

union all

select expiries.*
from expiries
cross join unused
where expiries.months <> expiries.months_spanned
    or expiries.vouchers <> unused.vouchers
    or expiries.expired <> unused.expired
