"""The voucher record, declared once: the Arrow types of ``columnar.py`` and dlt's column hints come from here.

Nullable fields are omitted by the API rather than sent as null: without hints a
column appears only once some record carries it, and SQL written against it would
break on a tenant that has none yet. So every documented field has a hint.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pyarrow as pa

CONTENT_HASH = "content_hash"
TIMESTAMP = pa.timestamp("us", tz="UTC")


class Field(NamedTuple):
    column: str  # the warehouse column (dlt's snake_case of the flattened path)
    arrow: pa.DataType
    dlt: str  # dlt's data type


# Documented voucher fields by their flattened API path (``usedBy__firstName``).
VOUCHER_FIELDS: dict[str, Field] = {
    "id": Field("id", pa.string(), "text"),
    "voucherCode": Field("voucher_code", pa.string(), "text"),
    "voucherPurchaseCode": Field("voucher_purchase_code", pa.string(), "text"),
    "expirationDateUtc": Field("expiration_date_utc", TIMESTAMP, "timestamp"),
    "isActive": Field("is_active", pa.bool_(), "bool"),
    "isUsed": Field("is_used", pa.bool_(), "bool"),
    "assignedDateUtc": Field("assigned_date_utc", TIMESTAMP, "timestamp"),
    "recipientEmail": Field("recipient_email", pa.string(), "text"),
    "reservationCode": Field("reservation_code", pa.string(), "text"),
    "reservationStatus": Field("reservation_status", pa.string(), "text"),
    "storeExamCode": Field("store_exam_code", pa.string(), "text"),
    "usedBy__clientCandidateId": Field("used_by__client_candidate_id", pa.string(), "text"),
    "usedBy__firstName": Field("used_by__first_name", pa.string(), "text"),
    "usedBy__lastName": Field("used_by__last_name", pa.string(), "text"),
    "usedBy__personId": Field("used_by__person_id", pa.string(), "text"),
    "usedBy__usedDateUtc": Field("used_by__used_date_utc", TIMESTAMP, "timestamp"),
}
# Added by columnar.py: the scd2 row version, a hash of the record as the API sent it.
ROW_VERSION = Field(CONTENT_HASH, pa.int64(), "bigint")
NOT_NULL = frozenset({"id", CONTENT_HASH})  # in the Arrow schema (dlt warns when Arrow's schema disagrees)

PURCHASE_COLUMNS = {
    "id": "text", "voucher_purchase_code": "text", "partner_name": "text", "program_name": "text",
    "purchase_date_utc": "timestamp", "purchased_by_first_name": "text", "purchased_by_last_name": "text",
    "quantity": "bigint", "quantity_used": "bigint", "quantity_remaining": "bigint", "status": "text",
    "amount_paid": "decimal", "is_archived": "bool", "notes": "text",
}


def column_hints(types: dict[str, str]) -> dict[str, dict[str, Any]]:
    """dlt column hints for columns and their dlt types; only ``id`` is declared not null (as the
    tables were first created: a hint that tightened a loaded column would be a schema change)."""
    hints: dict[str, dict[str, Any]] = {}
    for name, data_type in types.items():
        hints[name] = {"data_type": data_type, "nullable": name != "id"}
        if data_type == "timestamp":
            hints[name]["timezone"] = True
    return hints


def voucher_hints() -> dict[str, dict[str, Any]]:
    """dlt's column hints for the vouchers table, from ``VOUCHER_FIELDS``."""
    return column_hints({f.column: f.dlt for f in (*VOUCHER_FIELDS.values(), ROW_VERSION)})
