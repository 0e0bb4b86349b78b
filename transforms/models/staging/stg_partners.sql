-- one row per partner (the organisations that buy and hand out vouchers)

with

source as (

    select * from {{ source("certiverse", "partners") }}

),

renamed as (

    select
        id as partner_id,
        name as partner_name,
        is_active,
        is_archived,
        case
            when is_archived then 'Archived'
            when is_active then 'Active'
            else 'Inactive'
        end as partner_status

    from source

)

select * from renamed
