-- one row per purchase, with its partner and program resolved by name, its date in the reporting time zone and the value of one of its vouchers

{{ config(materialized="ephemeral") }}

with

purchases as (

    select * from {{ ref("stg_purchases") }}

),

partners as (

    select * from {{ ref("int_partners") }}

),

programs as (

    select * from {{ ref("int_programs") }}

),

final as (

    select
        purchases.purchase_id,
        purchases.purchase_code,
        partners.partner_id,
        purchases.partner_name,
        programs.program_id,
        purchases.program_name,
        purchases.purchase_status,
        purchases.purchased_at,
        {{ local_date("purchases.purchased_at") }} as purchased_on,
        purchases.purchased_by_first_name,
        purchases.purchased_by_last_name,
        purchases.is_archived,
        purchases.quantity,
        purchases.quantity_used_reported,
        purchases.quantity_remaining_reported,
        purchases.amount_paid,
        -- the one definition of a voucher's value (docs/marts.md): what was paid for
        -- it; failing that, the program's cost per voucher (the exam's price is the
        -- last resort, applied per voucher in voucher_status)
        coalesce(
            purchases.amount_paid_per_voucher,
            programs.cost_per_voucher
        ) as value_per_voucher,
        case
            when purchases.amount_paid_per_voucher is not null then 'amount_paid'
            when programs.cost_per_voucher is not null then 'program_cost'
        end as value_basis

    from purchases
    -- names match exactly: "Acme" is not "Acme Europe"
    left join partners
        on purchases.partner_name = partners.partner_name
    left join programs
        on purchases.program_name = programs.program_name

)

select * from final
