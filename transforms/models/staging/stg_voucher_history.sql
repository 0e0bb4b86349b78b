-- one row per voucher version: what each load saw of each voucher, for charts over time

with

source as (

    select * from {{ source("certiverse", "vouchers") }}

),

renamed as (

    select
        id as voucher_id,
        _dlt_valid_from as valid_from_at,
        _dlt_valid_to as valid_to_at,
        _dlt_valid_to is null as is_current_version,
        voucher_code,
        voucher_purchase_code as purchase_code,
        store_exam_code as exam_code,
        is_active,
        is_used,
        expiration_date_utc as expires_at,
        {{ local_date("expiration_date_utc") }} as expires_on,
        assigned_date_utc as assigned_at,
        recipient_email,
        reservation_status,
        used_by__used_date_utc as used_at

    from source

)

select * from renamed
