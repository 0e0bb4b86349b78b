"""Habits of a real service that the reference leaves open, as named knobs of the simulator.

``SimulatorApp(habits=...)`` takes any of ``HABITS``; with none (the default) every answer is
exactly what the reference describes. Each habit is deterministic: a record's fields take the
same form on every request (chosen by a hash of the record's id and the field's path), and the
forms are mixed within a page, so both the fast and the careful reading of a column are used.

Habits that change only the form (the meaning is the reference's):

* ``bool_strings``: booleans as ``"true"``, ``"True"``, ``"FALSE"``, ``1``/``0`` or ``"1"``/``"0"``;
* ``number_strings``: integers as ``"12"``, ``12.0`` or ``"1.200000000000000e+01"``, decimals as
  ``"12.50"``, ``"1.25e1"``-style text or a whole number;
* ``timestamp_forms``: ISO 8601 with ``+00:00``, another offset, no zone at all, seven fraction
  digits (ASP.NET), a space for the ``T``, ASP.NET's ``/Date(ms)/``, or a date alone (midnight);
* ``whitespace``: whitespace around the body and around names, e-mails, statuses and the values
  other habits turned into text;
* ``bom``: a UTF-8 byte-order mark before the body and before some names and e-mails.

Habits that change what the API says (``meaning`` gives the records as the API then means them,
which is what a warehouse must hold):

* ``nulls``: omitted fields sent as ``null``, and fields the reference says are never null sent
  as null or left out (purchases' ``notes`` and ``purchasedByLastName``, programs'
  ``voucherCodePrefix``, partner users' ``status``, vouchers' ``voucherCode``);
* ``unknown_enums``: status values outside the documented lists (a checkout ``CheckoutAbandoned``,
  a reservation ``Rescheduled``, a partner user ``PendingInvitation``);
* ``new_fields``: fields the reference does not list, with one type each (text, number, an
  object, a timestamp in a field of its own).
"""

from __future__ import annotations

import copy
import datetime as dt
import zlib
from collections.abc import Iterable
from typing import Any

HABITS = ("bool_strings", "number_strings", "timestamp_forms", "whitespace", "bom", "nulls", "unknown_enums",
          "new_fields")

# The reference's fields by type (every endpoint; nested objects and list items included).
BOOL_FIELDS = frozenset({"isActive", "isArchived", "isInactive", "isUsed", "allowAchPayments",
                         "canAssignedPartnersPurchaseZeroPrice", "isAvailableToAllVoucherPartners",
                         "enforceAssignedEmailToBookExam"})
INT_FIELDS = frozenset({"quantity", "quantityUsed", "quantityRemaining", "expirationPeriodInDays"})
DECIMAL_FIELDS = frozenset({"amountPaid", "percent", "price", "partnerCostPerVoucher"})
TIMESTAMP_FIELDS = frozenset({"purchaseDateUtc", "expirationDateUtc", "assignedDateUtc", "usedDateUtc"})
# Text whose meaning whitespace around it does not change (identifiers and codes are left alone).
PADDED_FIELDS = frozenset({"name", "partnerName", "programName", "purchasedByFirstName", "purchasedByLastName",
                           "firstName", "lastName", "email", "recipientEmail", "status", "reservationStatus"})
NULLABLE_VOUCHER_FIELDS = ("assignedDateUtc", "recipientEmail", "reservationCode", "reservationStatus",
                           "storeExamCode", "usedBy")
UNKNOWN_ENUMS = {
    "purchases": ("status", {"CheckoutCancelled": "CheckoutAbandoned", "CheckoutExpired": "CheckoutAbandoned"}),
    "vouchers": ("reservationStatus", {"Scheduled": "Rescheduled", "Cancelled": "CancelledByCandidate"}),
}
NEW_FIELDS = {
    "partners": {"externalRef": lambda r: "EXT-" + r["id"][:8]},
    "programs": {"category": lambda r: "IT" if len(r["name"]) % 2 else "Business"},
    "purchases": {"currency": lambda r: "USD", "taxAmount": lambda r: round(len(r["id"]) * 0.25, 2)},
    "vouchers": {"loyaltyTier": lambda r: ("gold", "silver", "bronze")[_pick(r["id"], "tier", 3)],
                 "priority": lambda r: _pick(r["id"], "priority", 5),
                 "meta": lambda r: {"source": "portal", "revision": 1 + _pick(r["id"], "revision", 3)},
                 "issuedOnUtc": lambda r: r["expirationDateUtc"]},
}


def _pick(key: str, path: str, n: int, seed: int = 0) -> int:
    return zlib.crc32(f"{seed}|{key}|{path}".encode()) % n


def meaning(resource: str, record: dict[str, Any], habits: Iterable[str]) -> dict[str, Any]:
    """The record as the API means it under these habits: what a warehouse must hold (a copy)."""
    names = frozenset(habits)
    out = copy.deepcopy(record)
    if "nulls" in names:
        _null_meaning(resource, out)
    if "unknown_enums" in names and resource in UNKNOWN_ENUMS:
        field, renames = UNKNOWN_ENUMS[resource]
        if out.get(field) in renames and _pick(out["id"], field, 2) == 0:
            out[field] = renames[out[field]]
    if "unknown_enums" in names and resource == "partners":
        for i, user in enumerate(out.get("users") or []):
            if user.get("status") == "Invited" and _pick(out["id"], f"users{i}", 2) == 0:
                user["status"] = "PendingInvitation"
    if "new_fields" in names:
        for field, make in NEW_FIELDS.get(resource, {}).items():
            out[field] = make(out)
    return out


def _null_meaning(resource: str, record: dict[str, Any]) -> None:
    """Fields the reference says always hold a value, null or left out on some records."""
    key = record["id"]
    if resource == "purchases":
        if _pick(key, "notes", 3) == 0:
            record["notes"] = None
        if _pick(key, "purchasedByLastName", 4) == 0:
            record.pop("purchasedByLastName", None)
    elif resource == "programs" and _pick(key, "voucherCodePrefix", 2) == 0:
        record["voucherCodePrefix"] = None
    elif resource == "partners":
        for i, user in enumerate(record.get("users") or []):
            if _pick(key, f"users{i}.status", 3) == 0:
                user["status"] = None
    elif resource == "vouchers" and _pick(key, "voucherCode", 8) == 0:
        record.pop("voucherCode", None)


class Habits:
    """The habits an app plays, applied to each answer's records and body."""

    def __init__(self, names: Iterable[str] = (), seed: int = 0) -> None:
        self.names = frozenset(names)
        unknown = self.names - set(HABITS)
        if unknown:
            raise ValueError(f"unknown habits {sorted(unknown)}; known: {', '.join(HABITS)}")
        self.seed = seed

    def __bool__(self) -> bool:
        return bool(self.names)

    def records(self, resource: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Records as the API sends them under these habits."""
        out = []
        for record in records:
            sent = meaning(resource, record, self.names)
            if "nulls" in self.names and resource == "vouchers":
                for field in NULLABLE_VOUCHER_FIELDS:
                    sent.setdefault(field, None)
            out.append(self._forms(sent, sent["id"], ""))
        return out

    def body(self, body: bytes) -> bytes:
        """The answer's body as sent: maybe with a byte-order mark and whitespace around it."""
        if "whitespace" in self.names:
            body = b"\r\n  " + body + b"\n\t "
        if "bom" in self.names:
            body = b"\xef\xbb\xbf" + body
        return body

    def _forms(self, value: Any, key: str, path: str) -> Any:
        if isinstance(value, dict):
            return {k: self._field(k, v, key, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self._forms(v, key, f"{path}[{i}]") for i, v in enumerate(value)]
        return value

    def _field(self, name: str, value: Any, key: str, path: str) -> Any:
        if isinstance(value, (dict, list)):
            return self._forms(value, key, path)
        if value is None:
            return None
        sent = value
        if name in BOOL_FIELDS and "bool_strings" in self.names:
            sent = self._bool(value, key, path)
        elif name in INT_FIELDS and "number_strings" in self.names:
            sent = self._int(value, key, path)
        elif name in DECIMAL_FIELDS and "number_strings" in self.names:
            sent = self._decimal(value, key, path)
        elif name in TIMESTAMP_FIELDS and "timestamp_forms" in self.names:
            sent = self._timestamp(value, key, path)
        if isinstance(sent, str) and (sent is not value or name in PADDED_FIELDS):
            sent = self._pad(sent, key, path)
        return sent

    def _choice(self, key: str, path: str, n: int) -> int:
        return _pick(key, path, n, self.seed)

    def _bool(self, value: bool, key: str, path: str) -> Any:
        forms = (value, "true" if value else "false", "True" if value else "False", "TRUE" if value else "FALSE",
                 int(value), str(int(value)))
        return forms[self._choice(key, path, len(forms))]

    def _int(self, value: int, key: str, path: str) -> Any:
        forms = (value, str(value), float(value), f"{value:.15e}")
        return forms[self._choice(key, path, len(forms))]

    def _decimal(self, value: float, key: str, path: str) -> Any:
        forms: tuple[Any, ...] = (value, f"{value:.2f}" if round(value, 2) == value else repr(value),
                                  f"{value:.15e}", repr(value))
        if float(value).is_integer():
            forms += (int(value),)
        return forms[self._choice(key, path, len(forms))]

    def _timestamp(self, value: str, key: str, path: str) -> Any:
        instant = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        eastern = instant.astimezone(dt.timezone(dt.timedelta(hours=-5)))
        plain = instant.strftime("%Y-%m-%dT%H:%M:%S")
        forms = [value, plain + "+00:00", eastern.isoformat(), plain, plain + ".0000000Z",
                 plain.replace("T", " ") + "Z", f"/Date({int(instant.timestamp() * 1000)})/"]
        if instant.time() == dt.time(0):
            forms.append(instant.date().isoformat())
        return forms[self._choice(key, path, len(forms))]

    def _pad(self, text: str, key: str, path: str) -> str:
        choice = self._choice(key, "pad" + path, 4)
        if "whitespace" in self.names and choice == 1:
            text = f"  {text}\t"
        elif "whitespace" in self.names and choice == 2:
            text = f"{text} "
        if "bom" in self.names and choice == 3:
            text = "\ufeff" + text
        return text
