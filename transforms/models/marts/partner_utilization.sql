-- one row per partner name (every partner, and any name purchases carry that matches no partner): voucher use and value

with

partners as (

    select * from {{ ref("int_partners") }}

),

purchases as (

    select * from {{ ref("voucher_utilization") }}

),

purchase_totals as (

    {{ purchase_totals("partner_name") }}

),

vouchers as (

    select * from {{ ref("voucher_status") }}

),

use_delays as (

    select
        partner_name,
        {{ median("days_purchase_to_use") }} as days_to_median_use

    from vouchers
    where days_purchase_to_use is not null
    group by partner_name

),

final as (

    select
        partners.partner_id,
        coalesce(partners.partner_name, purchase_totals.group_name) as partner_name,
        partners.partner_status,
        {{ utilization_columns() }}

    from partners
    full outer join purchase_totals
        on partners.partner_name = purchase_totals.group_name
    left join use_delays
        on coalesce(partners.partner_name, purchase_totals.group_name) = use_delays.partner_name

)

select * from final
