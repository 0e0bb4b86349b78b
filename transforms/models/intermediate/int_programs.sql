-- one row per program name: the program that purchases naming it are attributed to

with

programs as (

    select * from {{ ref("stg_programs") }}

),

-- purchases name their program; should two programs share a name, the active one
-- (then the lowest id) takes the purchases
ranked as (

    select
        programs.*,
        row_number() over (
            partition by program_name
            order by case when is_active then 0 else 1 end, program_id
        ) as name_rank

    from programs

),

final as (

    select
        program_id,
        program_name,
        program_status,
        expiration_period_days,
        cost_per_voucher

    from ranked
    where name_rank = 1

)

select * from final
