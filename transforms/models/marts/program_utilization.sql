-- one row per program name (every program, and any name purchases carry that matches no program): voucher use and value

with

programs as (

    select * from {{ ref("int_programs") }}

),

purchases as (

    select * from {{ ref("voucher_utilization") }}

),

purchase_totals as (

    {{ purchase_totals("program_name") }}

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
        {{ utilization_columns() }}

    from programs
    full outer join purchase_totals
        on programs.program_name = purchase_totals.group_name
    left join use_delays
        on coalesce(programs.program_name, purchase_totals.group_name) = use_delays.program_name

)

select * from final
