-- one row per partner name: the partner that purchases naming it are attributed to

with

partners as (

    select * from {{ ref("stg_partners") }}

),

-- purchases name their partner; should two partners share a name, the active one
-- (then the lowest id) takes the purchases
ranked as (

    select
        partners.*,
        row_number() over (
            partition by partner_name
            order by case when is_active then 0 else 1 end, partner_id
        ) as name_rank

    from partners

),

final as (

    select
        partner_id,
        partner_name,
        partner_status

    from ranked
    where name_rank = 1

)

select * from final
