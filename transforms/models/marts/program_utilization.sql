-- one row per program name (every program, and any name purchases carry that matches no program): voucher use and value

with

programs as (

    select * from {{ ref("int_programs") }}

),

purchase_totals as (

    select * from {{ ref("int_purchase_totals") }}
    where grouped_by = 'program'

),

vouchers as (

    select * from {{ ref("voucher_status") }}

),

use_delays as (

    select
        program_name,
        {{ median("days_purchase_to_use") }} as days_to_median_use

    from vouchers
    where days_purchase_to_use is not null
    group by program_name

),

final as (

    select
        programs.program_id,
        coalesce(programs.program_name, purchase_totals.group_name) as program_name,
        programs.program_status,
        programs.expiration_period_days,
        {{ money("programs.cost_per_voucher") }} as cost_per_voucher,
        coalesce(purchase_totals.purchases, 0) as purchases,
        coalesce(purchase_totals.purchases_with_vouchers, 0) as purchases_with_vouchers,
        coalesce(purchase_totals.purchases_with_count_mismatch, 0) as purchases_with_count_mismatch,
        coalesce(purchase_totals.vouchers_issued, 0) as vouchers_issued,
        coalesce(purchase_totals.vouchers_used, 0) as vouchers_used,
        coalesce(purchase_totals.vouchers_assigned_unused, 0) as vouchers_assigned_unused,
        coalesce(purchase_totals.vouchers_reserved, 0) as vouchers_reserved,
        coalesce(purchase_totals.vouchers_unassigned, 0) as vouchers_unassigned,
        coalesce(purchase_totals.vouchers_expired_unused, 0) as vouchers_expired_unused,
        coalesce(purchase_totals.vouchers_deactivated, 0) as vouchers_deactivated,
        cast(
            1.0 * purchase_totals.vouchers_used / nullif(purchase_totals.vouchers_issued, 0)
            as decimal(9, 4)
        ) as utilization_rate,
        cast(use_delays.days_to_median_use as decimal(9, 1)) as days_to_median_use,
        {{ money("coalesce(purchase_totals.amount_paid, 0)") }} as amount_paid,
        {{ money("coalesce(purchase_totals.value_issued, 0)") }} as value_issued,
        {{ money("coalesce(purchase_totals.value_used, 0)") }} as value_used,
        {{ money("coalesce(purchase_totals.value_redeemable, 0)") }} as value_redeemable,
        {{ money("coalesce(purchase_totals.value_expired_unused, 0)") }} as value_expired_unused,
        {{ money("coalesce(purchase_totals.value_deactivated, 0)") }} as value_deactivated

    from programs
    full outer join purchase_totals
        on programs.program_name = purchase_totals.group_name
    left join use_delays
        on coalesce(programs.program_name, purchase_totals.group_name) = use_delays.program_name

)

select * from final
