"""How a documented value is read: lenient in what is accepted, strict in what is stored.

The reference gives each field a type; the service behind it (ASP.NET, proxies) has habits
the reference does not mention. Whatever form a value comes in, it is read by its meaning and
stored in the field's declared type (``schema.py``):

* booleans: ``true``/``false``, ``"true"``/``"True"``/``"FALSE"``, ``1``/``0``, ``"1"``/``"0"``,
  ``"yes"``/``"no"``, ``"t"``/``"f"``, ``"y"``/``"n"``, ``"on"``/``"off"``;
* integers: ``12``, ``12.0``, ``"12"``, ``"1.2e1"``; decimals: ``12.5``, ``12``, ``"12.50"``, ``"1.25e1"``;
* timestamps: ISO 8601 with ``Z``, an offset or nothing (UTC, as the reference says), fractions of
  any length (ASP.NET sends seven digits), a space for the ``T``, a date alone (midnight UTC),
  ASP.NET's ``/Date(ms)/``, or epoch seconds or milliseconds as a number;
* text: numbers and booleans as their JSON text; surrounding whitespace and byte-order marks
  dropped, except in free text people typed (``schema.AS_SENT``), which is stored as sent;
* null, a missing field, or an empty string in a non-text field: null, whatever the reference
  says about nullability; enum values outside the documented lists: text like any other.

A value that has no such reading (``"maybe"`` for a boolean, ``12.5`` for a quantity, an object
where a number belongs) raises :class:`UnreadableValueError`, naming the endpoint, the record's id
and the field: the run stops rather than store a guess.

Two callers: ``read_record`` rewrites a record of the JSON path (partners, programs, purchases)
in place, value by value; ``columnar.py`` builds voucher columns with Arrow and comes here, a
column at a time, only when Arrow's fast conversion refuses a column or text needs trimming.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

import orjson

from .client import CertiverseError
from .schema import AS_SENT, DOCUMENTED

# Surrounding characters that are never part of a value's meaning: whitespace and the byte-order mark.
STRAY = (" \t\n\r\x0b\x0c\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u200b\u202f"
         "\u3000\ufeff")
TRUE = frozenset({"true", "1", "yes", "y", "t", "on"})
FALSE = frozenset({"false", "0", "no", "n", "f", "off"})
_ASPNET_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MS_FROM = 100_000_000_000  # an epoch number this large is milliseconds (in seconds it would be year 5138)


class UnreadableValueError(CertiverseError):
    """A value no reading by meaning fits; names the endpoint, the record and the field."""

    def __init__(self, endpoint: str, record: str, field: str, value: Any, expected: str) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        super().__init__(f"{endpoint} record {record}: field {field} = {shown} cannot be read as {expected}; "
                         "stopping before anything of this run is stored")
        self.endpoint, self.record, self.field, self.value = endpoint, record, field, value


class _Unreadable(ValueError):
    """Raised by the readers; the callers know the endpoint, record and field and re-raise it named."""


def _clean(value: str) -> str | None:
    text = value.strip(STRAY)
    return text or None


def read_bool(value: Any) -> bool | None:
    """A boolean in any reasonable form; None for null or an empty string."""
    if value is None or value is True or value is False:
        return value
    if isinstance(value, (int, float)):
        if value in (0, 1):
            return bool(value)
    elif isinstance(value, str):
        text = _clean(value)
        if text is None:
            return None
        folded = text.lower()
        if folded in TRUE:
            return True
        if folded in FALSE:
            return False
    raise _Unreadable("a boolean")


def flag(value: Any) -> bool | None:
    """A boolean for an estimate (the plans' sample): as ``read_bool``, but None where it has no reading (the
    value is checked, and the run stopped, where it is stored)."""
    try:
        return read_bool(value)
    except _Unreadable:
        return None


def _number(value: Any, expected: str) -> Decimal | float | int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Unreadable(expected)
    if isinstance(value, str):
        text = _clean(value)
        if text is None:
            return None
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise _Unreadable(expected) from None
        if not number.is_finite():
            raise _Unreadable(expected)
        return number
    if isinstance(value, float) and not math.isfinite(value):
        raise _Unreadable(expected)
    return value


def read_int(value: Any) -> int | None:
    """A whole number in any reasonable form (``12``, ``12.0``, ``"12"``, ``"1.2e1"``)."""
    if value is None or type(value) is int:
        return value
    number = _number(value, "a whole number")
    if number is None:
        return None
    if number != int(number):
        raise _Unreadable("a whole number")
    return int(number)


def read_float(value: Any) -> float | None:
    """A decimal number in any reasonable form, as JSON numbers are read (a float)."""
    if value is None or type(value) is float:
        return value
    number = _number(value, "a number")
    return None if number is None else float(number)


def read_timestamp(value: Any) -> dt.datetime | None:
    """An instant in any reasonable form, as an aware UTC datetime (a naive value is UTC, as the reference
    says every timestamp is)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _Unreadable("a timestamp")
    if isinstance(value, str):
        text = _clean(value)
        if text is None:
            return None
        aspnet = _ASPNET_DATE.match(text)
        if aspnet:
            return _from_epoch(int(aspnet.group(1)) / 1000)
        try:
            parsed = dt.datetime.fromisoformat(text)  # Python 3.11: Z, offsets, any fraction, dates alone
        except ValueError:
            try:
                return _from_epoch(float(text))
            except ValueError:
                raise _Unreadable("a timestamp") from None
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.astimezone(dt.timezone.utc)
    return _from_epoch(value)


def _from_epoch(number: float) -> dt.datetime:
    if not math.isfinite(number):
        raise _Unreadable("a timestamp")
    seconds = number / 1000 if abs(number) >= _MS_FROM else number
    try:
        return _EPOCH + dt.timedelta(seconds=seconds)
    except OverflowError:
        raise _Unreadable("a timestamp") from None


def read_text(value: Any) -> str | None:
    """Text without the whitespace and byte-order marks around it; numbers and booleans as their JSON text."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip(STRAY)
    return _scalar_text(value)


def read_text_as_sent(value: Any) -> str | None:
    """Free text people typed: as sent (numbers and booleans as their JSON text)."""
    if value is None or isinstance(value, str):
        return value
    return _scalar_text(value)


def _scalar_text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise _Unreadable("text")
    return orjson.dumps(value).decode()


READERS: dict[str, Callable[[Any], Any]] = {
    "text": read_text, "bool": read_bool, "bigint": read_int, "double": read_float, "decimal": read_float,
    "timestamp": read_timestamp,
}


def reader(kind: str, field: str) -> Callable[[Any], Any]:
    """The reader of a documented field of dlt type ``kind`` (free text has its own)."""
    return read_text_as_sent if field in AS_SENT else READERS[kind]


def describe_record(record: Any) -> str:
    """How an error names a record: its id, else its code, else that it has neither."""
    if isinstance(record, dict):
        for key in ("id", "voucherCode", "voucherPurchaseCode", "name"):
            value = record.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip(STRAY):
                return str(value).strip(STRAY)
    return "(without an id)"


def read_value(endpoint: str, record: Any, field: str, kind: str, value: Any) -> Any:
    """One documented value read by its meaning; :class:`UnreadableValueError` names where it failed."""
    try:
        return reader(kind, field.rsplit(".", 1)[-1])(value)
    except _Unreadable as exc:
        raise UnreadableValueError(endpoint, describe_record(record), field, value, str(exc)) from None


def read_record(endpoint: str, record: dict[str, Any], spec: dict[str, Any], root: Any = None,
                prefix: str = "") -> dict[str, Any]:
    """Rewrite a record's documented fields in place, each in its canonical JSON form (what a well-formed
    answer holds: bool, int, float, text, and for timestamps an aware UTC datetime); the record returned.
    Undocumented fields are left as sent; an object or list that is null stays null."""
    root = record if root is None else root
    for key, kind in spec.items():
        if key not in record:
            continue
        value = record[key]
        where = prefix + key
        if isinstance(kind, str):
            if not _canonical(kind, key, value):
                record[key] = read_value(endpoint, root, where, kind, value)
        elif value is None:
            continue
        elif isinstance(kind, dict) and isinstance(value, dict):
            read_record(endpoint, value, kind, root, where + ".")
        elif isinstance(kind, list) and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    read_record(endpoint, item, kind[0], root, f"{where}[{i}].")
                elif item is not None:
                    raise UnreadableValueError(endpoint, describe_record(root), f"{where}[{i}]", item, "an object")
        else:
            raise UnreadableValueError(endpoint, describe_record(root), where, value,
                                       "an object" if isinstance(kind, dict) else "a list")
    return record


def _canonical(kind: str, field: str, value: Any) -> bool:
    """Whether a value is already in its canonical form (the common case: no rewrite, no allocation)."""
    if value is None:
        return True
    if kind == "text":
        return type(value) is str and (field in AS_SENT or not value or (
            value[0] not in STRAY and value[-1] not in STRAY))
    if kind == "bool":
        return type(value) is bool
    if kind == "bigint":
        return type(value) is int
    if kind in ("double", "decimal"):
        return type(value) is float
    return False  # timestamps are always parsed: the JSON path carries datetimes, not text


def require_id(endpoint: str, record: Any) -> None:
    """Every record needs its id (the primary key): a record without one cannot be stored."""
    if not isinstance(record, dict):
        raise UnreadableValueError(endpoint, "(not an object)", "(record)", record, "an object")
    value = record.get("id")
    if not isinstance(value, str) or not value.strip(STRAY):
        raise UnreadableValueError(endpoint, describe_record(record), "id", value, "a non-empty id")


def read_records(endpoint: str, records: list[Any]) -> list[dict[str, Any]]:
    """A page of a JSON-path endpoint (partners, programs, purchases) read by meaning, in place."""
    spec = DOCUMENTED[endpoint]
    for record in records:
        if isinstance(record, dict):
            read_record(endpoint, record, spec)
        require_id(endpoint, record)
    return records
