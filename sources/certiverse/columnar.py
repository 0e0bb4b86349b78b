"""Vouchers as Arrow tables: the million-row resource skips dlt's row-by-row normalizer.

dlt normalizes dict items one row at a time (flattening, type inference, a row
hash for ``scd2``): on a large tenant that was a third of the run's CPU. Here the
vouchers are flattened and typed in batches, and written to parquet as they are.
What the JSON path gave for free is kept by hand:

* nested objects flatten to ``parent__child`` columns (``usedBy.firstName`` →
  ``used_by__first_name``), named by the schema's naming convention;
* a field the reference does not list becomes a new column (a nested list or a
  value of mixed types is kept as its JSON text; a field that is null everywhere, none);
* ``content_hash``, a 64-bit hash of the record (keys sorted, nulls left out as the API
  omits them), is the ``scd2`` row version: a voucher gets a new version exactly when
  the API's record changes, and a field that appears on other records changes nothing.

Documented fields are read by meaning (``values.py``), a column at a time: Arrow converts a
well-formed column at C speed; only a column Arrow refuses (a boolean sent as ``"true"``, a
timestamp with seven fraction digits) or text with stray whitespace is read value by value.
The values so read are written back into the records before hashing, so a voucher whose
booleans come as strings tonight keeps its row version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Iterable, Iterator

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.normalizers.naming.snake_case import NamingConvention

from .schema import AS_SENT, CONTENT_HASH, NOT_NULL, TIMESTAMP, VOUCHER_FIELDS, Field
from .values import STRAY, UnreadableValueError, describe_record, read_value, require_id

ENDPOINT = "vouchers"
_naming = NamingConvention()
# First and last UTF-8 bytes a stray character (values.STRAY) can have: a cheap screen over Arrow's buffers.
_STRAY_FIRST = np.zeros(256, dtype=bool)
_STRAY_LAST = np.zeros(256, dtype=bool)
for _char in STRAY:
    _encoded = _char.encode()
    _STRAY_FIRST[_encoded[0]] = _STRAY_LAST[_encoded[-1]] = True


def content_hash(record: dict[str, Any]) -> int:
    """Signed 64-bit hash of the record's canonical JSON (keys sorted, null fields left out)."""
    blob = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    if b"null" in blob:  # rare: the API omits null fields; an explicit null means the same
        blob = orjson.dumps(_without_nulls(record), option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(blob, digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _flat_columns(rows: list[dict[str, Any] | None], prefix: str = "") -> dict[str, list[Any]]:
    """Column lists by flattened path (``usedBy__firstName``), built a column at a time."""
    out: dict[str, list[Any]] = {}
    for key in set().union(*(r for r in rows if r)):
        values = [r.get(key) if r else None for r in rows]
        if dict in set(map(type, values)):
            out.update(_flat_columns([v if isinstance(v, dict) else None for v in values], f"{prefix}{key}__"))
        else:
            out[prefix + key] = values
    return out


def _has_stray(array: pa.Array) -> bool:
    """Whether a string array holds a value with whitespace or a byte-order mark around it.

    Looks at each value's first and last byte in Arrow's buffers (no Python string per value);
    only values that pass this screen are checked exactly.
    """
    if not len(array) or array.null_count == len(array):
        return False
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8)
    if not len(data):
        return False
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=len(array) + 1, offset=array.offset * 4)
    starts, ends = offsets[:-1], offsets[1:]
    screen = (_STRAY_FIRST[data[np.minimum(starts, len(data) - 1)]] | _STRAY_LAST[data[ends - 1]]) & (ends > starts)
    if not screen.any():
        return False
    return any(v != v.strip(STRAY) for v in array.filter(pa.array(screen)).to_pylist())


def _fast(path: str, field: Field, values: list[Any]) -> pa.Array | None:
    """Arrow's own conversion of a well-formed column; None when Arrow refuses it or text needs trimming."""
    try:
        if field.arrow == TIMESTAMP:
            return pc.cast(pa.array(values, type=pa.string()), TIMESTAMP)
        array = pa.array(values, type=field.arrow)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None
    if field.dlt == "text" and path not in AS_SENT and _has_stray(array):
        return None
    return array


def _json_form(field: Field, sent: Any, read: Any) -> Any:
    """What a well-formed answer would have sent for a value read by meaning: the form the row version
    hashes. Timestamps keep the form they were sent in (only trimmed): a warehouse loaded from an API
    that always sends one form keeps its row versions."""
    if field.arrow != TIMESTAMP or read is None:
        return read
    if isinstance(sent, str):
        return sent.strip(STRAY)
    return read.isoformat().replace("+00:00", "Z")


def _read_slowly(path: str, field: Field, values: list[Any], records: list[dict[str, Any]]) -> pa.Array:
    """Read a column value by value (``values.py``), and put each value's well-formed JSON form back into
    its record, so that the row version is the same whatever form the API used."""
    read = [read_value(ENDPOINT, records[i], path.replace("__", "."), field.dlt, v) for i, v in enumerate(values)]
    keys = path.split("__")
    for i, (sent, value) in enumerate(zip(values, read)):
        form = _json_form(field, sent, value)
        if type(form) is not type(sent) or form != sent:
            _put(records[i], keys, form)
    if field.arrow == TIMESTAMP:
        read = [None if v is None else v.astimezone(dt.timezone.utc) for v in read]
    return pa.array(read, type=field.arrow)


def _put(record: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        record = record.get(key)
        if not isinstance(record, dict):
            return
    if value is None:
        record.pop(keys[-1], None)
    else:
        record[keys[-1]] = value


def _extra_column(values: list[Any]) -> pa.Array | None:
    """A field the reference does not list: Arrow's inferred type, or JSON text if it has none; None if
    it is null everywhere (nothing to store, as dlt's JSON normalizer does)."""
    if all(v is None for v in values):
        return None
    if list not in set(map(type, values)):
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], type=pa.string())


def _check_shapes(values: dict[str, list[Any]], records: list[dict[str, Any]]) -> None:
    """A documented value sent as an object (``"isUsed": {...}``) would flatten away from its column."""
    for path in values.keys() - VOUCHER_FIELDS.keys():
        documented = next((p for p in VOUCHER_FIELDS if path.startswith(p + "__")), None)
        if documented is not None:
            row = next(i for i, v in enumerate(values[path]) if v is not None)
            raise UnreadableValueError(ENDPOINT, describe_record(records[row]), documented.replace("__", "."),
                                       records[row].get(documented.split("__")[0]), "a value, not an object")


def voucher_table(records: list[dict[str, Any]]) -> pa.Table:
    """One Arrow table for a batch of voucher records as the API returns them (a value read by meaning is
    rewritten in its record, in its well-formed form: the records are the run's own, parsed from the answers)."""
    values = _flat_columns(records)
    _check_shapes(values, records)
    missing = [None] * len(records)
    columns: dict[str, pa.Array] = {}
    for path, field in VOUCHER_FIELDS.items():
        column = values.get(path, missing)
        array = _fast(path, field, column)
        columns[field.column] = array if array is not None else _read_slowly(path, field, column, records)
    ids = columns["id"]
    if ids.null_count or (len(ids) and pc.any(pc.equal(ids, "")).as_py()):
        for record in records:
            require_id(ENDPOINT, record)
    for path in sorted(values.keys() - VOUCHER_FIELDS.keys()):
        name = _naming.normalize_path(path)
        if name not in columns:
            extra = _extra_column(values[path])
            if extra is not None:
                columns[name] = extra
    # Hashed after the documented values were read: a value read slowly was put back in its JSON form.
    columns[CONTENT_HASH] = pa.array([content_hash(r) for r in records], type=pa.int64())
    # Never null, as the resource's hints say (dlt warns when Arrow's schema disagrees).
    fields = [pa.field(name, array.type, nullable=name not in NOT_NULL) for name, array in columns.items()]
    return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))


def voucher_batches(pages: Iterable[list[dict[str, Any]]], batch_size: int = 5_000,
                    empty: bool = False) -> Iterator[pa.Table]:
    """Group pages of voucher records into Arrow tables of about ``batch_size`` rows; with ``empty``, a table
    without rows when there were no records at all (so that the table exists, with its columns)."""
    batch: list[dict[str, Any]] = []
    yielded = False
    for page in pages:
        batch.extend(page)
        if len(batch) >= batch_size:
            yield voucher_table(batch)
            batch, yielded = [], True
    if batch or (empty and not yielded):
        yield voucher_table(batch)
