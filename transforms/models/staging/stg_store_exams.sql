-- one row per exam sold under a program (an exam sold under two programs has two rows)

with

exams as (

    select * from {{ source("certiverse", "programs__store_exams") }}

),

programs as (

    select * from {{ source("certiverse", "programs") }}

),

renamed as (

    select
        programs.id as program_id,
        exams.id as exam_id,
        exams.code as exam_code,
        exams.name as exam_name,
        {{ money("exams.price", 4) }} as exam_price

    from exams
    -- dlt links child rows to their program through its row id, not the API's id
    inner join programs
        on exams._dlt_parent_id = programs._dlt_id

)

select * from renamed
