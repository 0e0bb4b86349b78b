-- The six statuses partition each purchase's vouchers. Returns the purchases where they do not.

select
    purchase_id,
    vouchers_issued

from {{ ref("voucher_utilization") }}
where vouchers_issued <> vouchers_used
    + vouchers_assigned_unused
    + vouchers_reserved
    + vouchers_unassigned
    + vouchers_expired_unused
    + vouchers_deactivated
