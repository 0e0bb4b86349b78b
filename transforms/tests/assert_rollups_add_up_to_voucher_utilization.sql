-- partner_utilization and program_utilization each add up to voucher_utilization's totals.
-- Returns the rollup whose totals differ.

-- Dagster shows this test as a check on one model (dagster-dbt needs it named when a test reads several).
{{ config(meta={"dagster": {"ref": {"name": "voucher_utilization"}}}) }}

{% set summed = [
    "vouchers_issued", "vouchers_used", "vouchers_assigned_unused", "vouchers_reserved",
    "vouchers_unassigned", "vouchers_expired_unused", "vouchers_deactivated",
    "amount_paid", "value_issued", "value_used", "value_redeemable", "value_expired_unused",
    "value_deactivated",
] %}

with

purchases as (

    select
        count(*) as purchases,
        {% for column in summed %}
        coalesce(sum({{ column }}), 0) as {{ column }}{{ "," if not loop.last }}
        {% endfor %}

    from {{ ref("voucher_utilization") }}

),

{% for rollup in ["partner_utilization", "program_utilization"] %}
{{ rollup }} as (

    select
        '{{ rollup }}' as rollup,
        coalesce(sum(purchases), 0) as purchases,
        {% for column in summed %}
        coalesce(sum({{ column }}), 0) as {{ column }}{{ "," if not loop.last }}
        {% endfor %}

    from {{ ref(rollup) }}

),
{% endfor %}

rollups as (

    select * from partner_utilization
    union all
    select * from program_utilization

)

select rollups.*

from rollups
cross join purchases
where rollups.purchases <> purchases.purchases
    {% for column in summed %}
    or rollups.{{ column }} <> purchases.{{ column }}
    {% endfor %}
