"""The documented records, declared once: how each field is read (``values.py``), the Arrow types of
``columnar.py`` and dlt's column hints all come from here.

Each record is declared field by field in dlt's data types, with the API's field names: a nested
object is a dict, a list of objects a one-element list (dlt makes it a child table). Fields the
reference does not list are left as sent (new fields become new columns).

Types are what the warehouse has always held for the field: the reference's decimals are
``decimal`` where a hint always said so (purchases' ``amountPaid``) and ``double`` where dlt
inferred them from JSON numbers (programs' prices and costs); changing a loaded column's type
would be a migration of every existing warehouse.

Nullable fields are omitted by the API rather than sent as null: without hints a column appears
only once some record carries it, and SQL written against it would break on a tenant that has none
yet. So every documented field has a hint, child tables included (an empty tenant gets them all).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pyarrow as pa
from dlt.common.normalizers.naming.snake_case import NamingConvention

CONTENT_HASH = "content_hash"
TIMESTAMP = pa.timestamp("us", tz="UTC")
ARROW_TYPES = {"text": pa.string(), "bool": pa.bool_(), "bigint": pa.int64(), "double": pa.float64(),
               "timestamp": TIMESTAMP}

# Fields people type into a form: stored exactly as sent (other text loses stray whitespace).
AS_SENT = frozenset({"notes"})

PARTNER: dict[str, Any] = {
    "id": "text", "isActive": "bool", "isArchived": "bool", "name": "text",
    "users": [{"email": "text", "isActive": "bool", "status": "text"}],
}
PROGRAM: dict[str, Any] = {
    "allowAchPayments": "bool", "expirationPeriodInDays": "bigint", "id": "text", "isActive": "bool",
    "isArchived": "bool", "isInactive": "bool", "name": "text", "voucherCodePrefix": "text",
    "restrictions": {"enforceAssignedEmailToBookExam": "bool"},
    "partners": {"canAssignedPartnersPurchaseZeroPrice": "bool", "isAvailableToAllVoucherPartners": "bool",
                 "partnerCostPerVoucher": "double"},
    "discounts": [{"id": "text", "percent": "double", "quantity": "bigint"}],
    "storeExams": [{"code": "text", "id": "text", "name": "text", "price": "double"}],
}
PURCHASE: dict[str, Any] = {
    "id": "text", "voucherPurchaseCode": "text", "partnerName": "text", "programName": "text",
    "purchaseDateUtc": "timestamp", "purchasedByFirstName": "text", "purchasedByLastName": "text",
    "quantity": "bigint", "quantityUsed": "bigint", "quantityRemaining": "bigint", "status": "text",
    "amountPaid": "decimal", "isArchived": "bool", "notes": "text",
}
VOUCHER: dict[str, Any] = {
    "id": "text", "voucherCode": "text", "voucherPurchaseCode": "text", "expirationDateUtc": "timestamp",
    "isActive": "bool", "isUsed": "bool", "assignedDateUtc": "timestamp", "recipientEmail": "text",
    "reservationCode": "text", "reservationStatus": "text", "storeExamCode": "text",
    "usedBy": {"clientCandidateId": "text", "firstName": "text", "lastName": "text", "personId": "text",
               "usedDateUtc": "timestamp"},
}
DOCUMENTED: dict[str, dict[str, Any]] = {"partners": PARTNER, "programs": PROGRAM, "purchases": PURCHASE,
                                         "vouchers": VOUCHER}

_naming = NamingConvention()


class Field(NamedTuple):
    column: str  # the warehouse column (dlt's snake_case of the flattened path)
    arrow: pa.DataType
    dlt: str  # dlt's data type


def flat_fields(spec: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """The scalar fields of a record and of its nested objects, by flattened path (``usedBy__firstName``):
    the root table's columns. Lists (child tables) are left out."""
    out: dict[str, str] = {}
    for key, kind in spec.items():
        if isinstance(kind, dict):
            out.update(flat_fields(kind, f"{prefix}{key}__"))
        elif isinstance(kind, str):
            out[prefix + key] = kind
    return out


def child_tables(spec: dict[str, Any], path: tuple[str, ...] = ()) -> dict[tuple[str, ...], dict[str, str]]:
    """Lists of objects (child tables) by their path below the root, with their fields."""
    out: dict[tuple[str, ...], dict[str, str]] = {}
    for key, kind in spec.items():
        if isinstance(kind, dict):
            out.update(child_tables(kind, (*path, key)))
        elif isinstance(kind, list):
            out[(*path, key)] = flat_fields(kind[0])
            out.update(child_tables(kind[0], (*path, key)))
    return out


# Documented voucher fields by their flattened API path: the Arrow path of columnar.py.
VOUCHER_FIELDS: dict[str, Field] = {
    path: Field(_naming.normalize_path(path), ARROW_TYPES[kind], kind) for path, kind in flat_fields(VOUCHER).items()
}
# Added by columnar.py: the scd2 row version, a hash of the record as the API sent it.
ROW_VERSION = Field(CONTENT_HASH, pa.int64(), "bigint")
NOT_NULL = frozenset({"id", CONTENT_HASH})  # in the Arrow schema (dlt warns when Arrow's schema disagrees)


# dlt's columns of a child table, as its normalizer adds them (a child table of a merge table has a root key).
# Declared so that a child table exists, joinable, before its first row (an empty tenant).
CHILD_LINK_COLUMNS: dict[str, dict[str, Any]] = {
    "_dlt_root_id": {"data_type": "text", "nullable": False, "root_key": True},
    "_dlt_parent_id": {"data_type": "text", "nullable": False, "parent_key": True},
    "_dlt_list_idx": {"data_type": "bigint", "nullable": False},
    "_dlt_id": {"data_type": "text", "nullable": False, "unique": True, "row_key": True},
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


def record_hints(endpoint: str) -> dict[str, dict[str, Any]]:
    """dlt's column hints for the root table of a JSON-path endpoint (partners, programs, purchases)."""
    spec = flat_fields(DOCUMENTED[endpoint])
    return column_hints({_naming.normalize_path(path): kind for path, kind in spec.items()})


def child_table_hints(endpoint: str) -> dict[tuple[str, ...], dict[str, Any]]:
    """dlt's ``nested_hints`` for an endpoint's child tables: their documented columns and dlt's link columns."""
    hints: dict[tuple[str, ...], dict[str, Any]] = {}
    for path, fields in child_tables(DOCUMENTED[endpoint]).items():
        columns = {name: {**hint, "nullable": True} for name, hint in column_hints(
            {_naming.normalize_path(p): kind for p, kind in fields.items()}).items()}
        hints[path] = {"columns": {**columns, **CHILD_LINK_COLUMNS}}
    return hints
