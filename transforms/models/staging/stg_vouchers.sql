-- one row per voucher, its current version (the vouchers table keeps every version, scd2)

with

source as (

    select * from {{ source("certiverse", "vouchers") }}

),

current_versions as (

    select * from source
    where _dlt_valid_to is null

),

renamed as (

    select
        id as voucher_id,
        voucher_code,
        voucher_purchase_code as purchase_code,
        store_exam_code as exam_code,
        is_active,
        is_used,
        expiration_date_utc as expires_at,
        assigned_date_utc as assigned_at,
        recipient_email,
        recipient_email is not null or assigned_date_utc is not null as is_assigned,
        reservation_code,
        reservation_status,
        used_by__used_date_utc as used_at,
        used_by__person_id as used_by_person_id,
        used_by__client_candidate_id as used_by_candidate_id,
        used_by__first_name as used_by_first_name,
        used_by__last_name as used_by_last_name,
        _dlt_valid_from as version_loaded_at

    from current_versions

)

select * from renamed
