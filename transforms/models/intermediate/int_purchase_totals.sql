-- one row per partner name and per program name that purchases carry: their purchases' voucher counts and value, summed

with

purchases as (

    select * from {{ ref("voucher_utilization") }}

),

-- each purchase twice: once under its partner's name, once under its program's
grouped as (

    select
        'partner' as grouped_by,
        partner_name as group_name,
        purchases.*

    from purchases

    union all

    select
        'program' as grouped_by,
        program_name as group_name,
        purchases.*

    from purchases

),

final as (

    select
        grouped_by,
        group_name,
        count(*) as purchases,
        count(case when vouchers_issued > 0 then 1 end) as purchases_with_vouchers,
        count(case when has_count_mismatch then 1 end) as purchases_with_count_mismatch,
        cast(sum(vouchers_issued) as {{ dbt.type_bigint() }}) as vouchers_issued,
        cast(sum(vouchers_used) as {{ dbt.type_bigint() }}) as vouchers_used,
        cast(sum(vouchers_assigned_unused) as {{ dbt.type_bigint() }}) as vouchers_assigned_unused,
        cast(sum(vouchers_reserved) as {{ dbt.type_bigint() }}) as vouchers_reserved,
        cast(sum(vouchers_unassigned) as {{ dbt.type_bigint() }}) as vouchers_unassigned,
        cast(sum(vouchers_expired_unused) as {{ dbt.type_bigint() }}) as vouchers_expired_unused,
        cast(sum(vouchers_deactivated) as {{ dbt.type_bigint() }}) as vouchers_deactivated,
        sum(amount_paid) as amount_paid,
        sum(value_issued) as value_issued,
        sum(value_used) as value_used,
        sum(value_redeemable) as value_redeemable,
        sum(value_expired_unused) as value_expired_unused,
        sum(value_deactivated) as value_deactivated

    from grouped
    group by
        grouped_by,
        group_name

)

select * from final
