-- one row per voucher program

with

source as (

    select * from {{ source("certiverse", "programs") }}

),

renamed as (

    select
        id as program_id,
        name as program_name,
        voucher_code_prefix,
        is_active,
        is_archived,
        is_inactive,
        case
            when is_archived then 'Archived'
            when is_inactive then 'Inactive'
            when is_active then 'Active'
            else 'Inactive'
        end as program_status,
        expiration_period_in_days as expiration_period_days,
        {{ money("partners__partner_cost_per_voucher", 4) }} as cost_per_voucher,
        partners__is_available_to_all_voucher_partners as is_open_to_all_partners,
        partners__can_assigned_partners_purchase_zero_price as can_partners_buy_at_zero_price,
        restrictions__enforce_assigned_email_to_book_exam as is_assigned_email_enforced,
        allow_ach_payments as is_ach_allowed

    from source

)

select * from renamed
