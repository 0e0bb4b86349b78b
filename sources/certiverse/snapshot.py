"""What the warehouse held after the last load, as the nightly plan needs it (``pipelines/snapshot.py`` reads it).

The unused, active vouchers ("live": open ones and those expired since) are held
in columns, about 50 bytes each; everything else the plan needs is a count or a
set of purchase codes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
NEVER = np.iinfo(np.int64).max  # expiry of a voucher without one


def epoch_us(value: dt.datetime | None) -> int:
    """Microseconds since 1970 (UTC; a naive value is taken as UTC); None is NEVER."""
    if value is None:
        return NEVER
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return (value - _EPOCH) // dt.timedelta(microseconds=1)


class LiveColumns(NamedTuple):
    """The snapshot's open vouchers, one numpy array per field, row for row."""

    id_hashes: np.ndarray  # hash(id), as SeenIds hashes ids
    codes: np.ndarray  # voucher codes, bytes
    purchase: np.ndarray  # index into LiveVouchers.purchases
    exam: np.ndarray  # index into LiveVouchers.exams, -1: no exam
    expires: np.ndarray  # epoch microseconds, NEVER: no expiry


# What ``add`` takes, and what ``add_arrow`` takes in this order.
_LIVE_SCHEMA = pa.schema([("id", pa.string()), ("voucher_code", pa.string()), ("voucher_purchase_code", pa.string()),
                          ("store_exam_code", pa.string()), ("expiration_date_utc", pa.timestamp("us", tz="UTC"))])


class LiveVouchers:
    """The unused, active vouchers the warehouse holds, in about 50 bytes each.

    A large tenant has hundreds of thousands of them, held for the whole run; as
    Python objects they cost ~400 bytes each and the run's memory grew with the
    tenant. Columns instead (``LiveColumns``): the id's hash, purchase and exam as
    indexes into shared lists, expiry in epoch microseconds, and the voucher code as
    bytes (needed only to re-read vouchers that left).
    """

    def __init__(self) -> None:
        self.purchases: list[str] = []
        self.exams: list[str] = []
        self._purchase_index: dict[str, int] = {}
        self._exam_index: dict[str, int] = {}
        self._chunks: list[LiveColumns] = []

    def add(self, rows: Iterable[tuple[str, str, str, str | None, dt.datetime | None]]) -> None:
        """Append rows of (id, voucher code, purchase code, exam code or None, expiry or None)."""
        fields = list(zip(*rows))
        if fields:
            self.add_arrow(pa.table([list(f) for f in fields], schema=_LIVE_SCHEMA))

    def add_arrow(self, table: pa.Table) -> None:
        """Append an Arrow table with the columns of ``add`` (in that order): no Python row objects."""
        if not table.num_rows:
            return
        vid, code, purchase, exam, expires = table.columns
        expires_us = pc.cast(pc.cast(expires, _LIVE_SCHEMA.field(4).type), pa.int64()).fill_null(NEVER)
        self._chunks.append(LiveColumns(
            np.array([hash(v) for v in vid.to_pylist()], dtype=np.int64),
            # b"": a voucher the API sent without its code (the reference says there always is one)
            np.array([(c or "").encode() for c in code.to_pylist()], dtype=np.bytes_),
            self._indexes(purchase, self.purchases, self._purchase_index),
            self._indexes(exam, self.exams, self._exam_index),
            expires_us.to_numpy().astype(np.int64),
        ))

    def _indexes(self, column: Any, values: list[str], index: dict[str, int]) -> np.ndarray:
        """Shared-list indexes of a string column (-1 for null) via Arrow's dictionary encoding."""
        encoded = pc.dictionary_encode(column.combine_chunks())
        mapping = np.array([self._index(v, values, index) for v in encoded.dictionary.to_pylist()] + [-1],
                           dtype=np.int32)
        return mapping[encoded.indices.fill_null(len(mapping) - 1).to_numpy()]

    @staticmethod
    def _index(value: str, values: list[str], index: dict[str, int]) -> int:
        i = index.get(value)
        if i is None:
            i = index[value] = len(values)
            values.append(value)
        return i

    @property
    def columns(self) -> LiveColumns:
        """All rows added so far (chunks are joined once, on first use)."""
        if len(self._chunks) != 1:
            empty = [np.empty(0, t) for t in (np.int64, np.bytes_, np.int32, np.int32, np.int64)]
            self._chunks = [LiveColumns(*(np.concatenate(parts) for parts in zip(empty, *self._chunks)))]
        return self._chunks[0]

    def __len__(self) -> int:
        return len(self.columns.id_hashes)

    def count_by(self, column: str) -> dict[str, int]:
        """Live vouchers per exam (``"exam"``) or per purchase (``"purchase"``); unlinked ones are not counted
        per exam."""
        values = self.exams if column == "exam" else self.purchases
        indexes = getattr(self.columns, column)
        counts = np.bincount(indexes[indexes >= 0], minlength=len(values))
        return {values[i]: int(n) for i, n in enumerate(counts.tolist()) if n}

    def purchase_codes(self, mask: np.ndarray) -> set[str]:
        """The purchases of the rows ``mask`` selects."""
        return {self.purchases[i] for i in np.unique(self.columns.purchase[mask]).tolist()}


@dataclass
class Snapshot:
    """What the warehouse held after the last successful load (current rows only)."""

    live: LiveVouchers = field(default_factory=LiveVouchers)  # unused, active vouchers
    purchases: dict[str, tuple[str, int]] = field(default_factory=dict)  # code -> (status, quantity)
    unlinked_settled: set[str] = field(default_factory=set)  # purchases with settled vouchers sans exam
    vouchers: int = 0  # current vouchers in all
