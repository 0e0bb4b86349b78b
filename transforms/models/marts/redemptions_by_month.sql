-- one row per month from the first use of a voucher to the as-of month (months without a use included): vouchers used that month and their value

with

vouchers as (

    select * from {{ ref("voucher_status") }}

),

used as (

    select
        {{ month_of("used_on") }} as used_month,
        voucher_value

    from vouchers
    where voucher_status = 'used'
        and used_on is not null

),

monthly as (

    select
        used_month,
        count(*) as vouchers_used,
        sum(voucher_value) as value_used

    from used
    group by used_month

),

bounds as (

    select
        min(used_month) as first_month,
        case
            when max(used_month) > {{ month_of(as_of_date()) }} then max(used_month)
            else {{ month_of(as_of_date()) }}
        end as last_month

    from monthly

),

-- the calendar, and any month of the data beyond it (union all and distinct: BigQuery has no bare union)
month_candidates as (

    {{ month_spine("bounds", "first_month", "last_month") }}

    union all

    select used_month as month
    from monthly

),

months as (

    select distinct month
    from month_candidates

),

final as (

    select
        months.month as used_month,
        coalesce(monthly.vouchers_used, 0) as vouchers_used,
        {{ money("coalesce(monthly.value_used, 0)") }} as value_used

    from months
    left join monthly
        on months.month = monthly.used_month

)

select * from final
