"""Vouchers as Arrow tables: the million-row resource skips dlt's row-by-row normalizer.

dlt normalizes dict items one row at a time (flattening, type inference, a row
hash for ``scd2``): on a large tenant that was a third of the run's CPU. Here the
vouchers are flattened and typed in batches, and written to parquet as they are.
What the JSON path gave for free is kept by hand:

* nested objects flatten to ``parent__child`` columns (``usedBy.firstName`` →
  ``used_by__first_name``), named by the schema's naming convention;
* a field the reference does not list becomes a new column (a nested list or a
  value of mixed types is kept as its JSON text);
* ``content_hash``, a 64-bit hash of the record as the API sent it (keys sorted),
  is the ``scd2`` row version: a voucher gets a new version exactly when the API's
  record changes, and a field that appears on other records changes nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Iterator

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.time import ensure_pendulum_datetime

from .schema import CONTENT_HASH, NOT_NULL, TIMESTAMP, VOUCHER_FIELDS

_naming = NamingConvention()


def content_hash(record: dict[str, Any]) -> int:
    """Signed 64-bit hash of the record's canonical JSON (keys sorted)."""
    digest = hashlib.blake2b(orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


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


def _timestamps(values: pa.Array) -> pa.Array:
    """ISO 8601 strings to UTC timestamps; dlt's parser for what Arrow's cast refuses (7-digit fractions)."""
    try:
        return pc.cast(values, TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        parsed = [None if v is None else ensure_pendulum_datetime(v) for v in values.to_pylist()]
        return pa.array(parsed, type=TIMESTAMP)


def _extra_column(values: list[Any]) -> pa.Array:
    """A field the reference does not list: Arrow's inferred type, or JSON text if it has none."""
    if list not in set(map(type, values)):
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], type=pa.string())


def voucher_table(records: list[dict[str, Any]]) -> pa.Table:
    """One Arrow table for a batch of voucher records as the API returns them."""
    hashes = pa.array([content_hash(r) for r in records], type=pa.int64())
    values = _flat_columns(records)
    missing = [None] * len(records)
    columns: dict[str, pa.Array] = {}
    for path, (name, data_type, _) in VOUCHER_FIELDS.items():
        column = values.get(path, missing)
        if data_type == TIMESTAMP:
            columns[name] = _timestamps(pa.array(column, type=pa.string()))
        else:
            columns[name] = pa.array(column, type=data_type)
    for path in sorted(values.keys() - VOUCHER_FIELDS.keys()):
        name = _naming.normalize_path(path)
        if name not in columns:
            columns[name] = _extra_column(values[path])
    columns[CONTENT_HASH] = hashes
    # Never null, as the resource's hints say (dlt warns when Arrow's schema disagrees).
    fields = [pa.field(name, array.type, nullable=name not in NOT_NULL) for name, array in columns.items()]
    return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))


def voucher_batches(pages: Iterable[list[dict[str, Any]]], batch_size: int = 5_000) -> Iterator[pa.Table]:
    """Group pages of voucher records into Arrow tables of about ``batch_size`` rows."""
    batch: list[dict[str, Any]] = []
    for page in pages:
        batch.extend(page)
        if len(batch) >= batch_size:
            yield voucher_table(batch)
            batch = []
    if batch:
        yield voucher_table(batch)
