-- one row per voucher purchase (an order of vouchers by a partner for a program), in any status

with

source as (

    select * from {{ source("certiverse", "purchases") }}

),

renamed as (

    select
        id as purchase_id,
        voucher_purchase_code as purchase_code,
        partner_name,
        program_name,
        status as purchase_status,
        purchase_date_utc as purchased_at,
        purchased_by_first_name,
        purchased_by_last_name,
        quantity,
        quantity_used as quantity_used_reported,
        quantity_remaining as quantity_remaining_reported,
        {{ money("amount_paid") }} as amount_paid,
        -- amount_paid / quantity rounded half up to 4 decimals, worked out on whole
        -- ten-thousandths: DuckDB divides decimals in floating point, and a rounding
        -- tie would otherwise fall differently on DuckDB and Postgres
        case
            when quantity > 0 and amount_paid is not null
                then cast(
                    cast(floor(({{ money("amount_paid") }} * 20000 + quantity) / (2 * quantity)) as decimal(18, 0))
                    * 0.0001
                    as decimal(18, 4)
                )
        end as amount_paid_per_voucher,
        is_archived,
        -- an empty note arrives as '' through DuckDB's parquet load and as null through
        -- Postgres' csv load: both become null
        nullif(notes, '') as notes

    from source

)

select * from renamed
