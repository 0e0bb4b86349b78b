-- one row per voucher (current version): its status on the as-of date and what it is worth; the one place the voucher statuses, redeemable and expired unused are defined

-- ephemeral: inlined into the marts that read it when they are built, so the as-of date and the
-- reporting time zone are always the run's, also under `--select voucher_status+`; a view would
-- keep the vars of the run that last created it
{{ config(materialized="ephemeral") }}

with

vouchers as (

    select
        stg_vouchers.*,
        {{ local_date("expires_at") }} as expires_on,
        {{ local_date("assigned_at") }} as assigned_on,
        {{ local_date("used_at") }} as used_on

    from {{ ref("stg_vouchers") }}

),

purchases as (

    select * from {{ ref("int_purchases") }}

),

exams as (

    select * from {{ ref("stg_store_exams") }}

),

joined as (

    select
        vouchers.*,
        purchases.purchase_id,
        purchases.partner_id,
        purchases.partner_name,
        purchases.program_id,
        purchases.program_name,
        purchases.purchased_on,
        purchases.value_per_voucher,
        purchases.value_basis,
        exams.exam_name,
        exams.exam_price,
        {{ days_between(as_of_date(), "vouchers.expires_on") }} as days_until_expiry,
        -- expired unused: from the day after the expiry date (in the reporting time zone); on
        -- that date 0 days are left. A used or deactivated voucher never counts as expired.
        not vouchers.is_used and vouchers.is_active and vouchers.expires_on < {{ as_of_date() }} as is_expired_unused

    from vouchers
    left join purchases
        on vouchers.purchase_code = purchases.purchase_code
    left join exams
        on vouchers.exam_code = exams.exam_code
        and purchases.program_id = exams.program_id

),

statuses as (

    select
        joined.*,
        -- the six statuses partition the vouchers; the first that applies wins
        case
            when is_used then 'used'
            when not is_active then 'deactivated'
            when is_expired_unused then 'expired_unused'
            when reservation_status = 'Scheduled' then 'reserved'
            when is_assigned then 'assigned_unused'
            else 'unassigned'
        end as voucher_status

    from joined

),

final as (

    select
        voucher_id,
        voucher_code,
        purchase_id,
        purchase_code,
        partner_id,
        partner_name,
        program_id,
        program_name,
        exam_code,
        exam_name,
        voucher_status,
        -- redeemable: unused, active and not expired, whether given to someone or not
        voucher_status in ('reserved', 'assigned_unused', 'unassigned') as is_redeemable,
        is_used,
        is_active,
        is_assigned,
        recipient_email,
        coalesce(reservation_status = 'Scheduled', false) as is_reserved,
        is_expired_unused,
        purchased_on,
        assigned_on,
        used_on,
        expires_at,
        expires_on,
        days_until_expiry,
        {{ days_between("purchased_on", "used_on") }} as days_purchase_to_use,
        {{ money("coalesce(value_per_voucher, exam_price, 0)", 4) }} as voucher_value,
        case
            when value_per_voucher is not null then value_basis
            when exam_price is not null then 'exam_price'
            else 'none'
        end as value_basis,
        {{ as_of_date() }} as as_of_date

    from statuses

)

select * from final
