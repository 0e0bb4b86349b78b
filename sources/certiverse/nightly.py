"""Nightly voucher reads: what can have changed since the last run, and a rolling re-check.

The API has no "changed since" filter. What the data tells instead:

* a voucher that is unused, active and not yet expired ("open") can change any
  day: it is re-read every night, either through its exam's slice
  ``isUsed=false&isActive=true&storeExamCode=E`` or through its purchase
  (``purchaseCode=P&isUsed=false&isActive=true``), whichever costs fewer requests
  by the warehouse's own counts. Vouchers not linked to an exam are only
  reachable through their purchase;
* an open voucher that does not come back was used or deactivated: it is
  fetched again on its own (or with its purchase, if cheaper);
* new purchases, and purchases whose status or quantity moved, are read whole;
* everything else is "settled" (used, deactivated, or expired unused). It can
  still change (expiry moved, re-activated), so 1/N of it is re-read each night
  in a rolling re-check: every settled voucher at least once every N nights.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .client import Query
from .plans import Catalog, VoucherPlan
from .reader import SeenIds, read_all

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 100  # only for estimates before the first page has told the real one


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
            np.array([c.encode() for c in code.to_pylist()], dtype=np.bytes_),
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


def slot(key: str, nights: int) -> int:
    """The night (0..nights-1) of the rolling re-check a key belongs to; stable across runs."""
    return zlib.crc32(key.encode()) % nights


def _pages(n: int, page: int) -> int:
    return max(1, math.ceil(n / page))


class NightlyPlan:
    """Reads the vouchers that can have changed, plus tonight's share of the rest."""

    def __init__(self, catalog: Catalog, snapshot: Snapshot, night: int, nights: int, now: dt.datetime) -> None:
        self.catalog = catalog
        self.snapshot = snapshot
        self.night = night % nights
        self.nights = nights
        self.now = now
        self.full = VoucherPlan(catalog)
        self.page = catalog.client.page_size or DEFAULT_PAGE_SIZE
        self.counts: dict[str, int] = {}
        self.estimated_requests = 0
        self.queries, self.watched = self._plan()

    def _plan(self) -> tuple[list[Query], np.ndarray]:
        """Tonight's queries, and the live vouchers (rows of the snapshot) they must return unless the
        vouchers changed."""
        live = self.snapshot.live
        exam, purchase = live.columns.exam, live.columns.purchase
        self.open = open_ = live.columns.expires >= epoch_us(self.now)
        changed = self.changed_purchases()
        cap = self.catalog.record_cap
        everything = Query.of("vouchers", isUsed=False, isActive=True)
        counts = np.bincount(exam[exam >= 0], minlength=len(live.exams))
        by_exam: Counter[str] = Counter({live.exams[i]: int(n) for i, n in enumerate(counts.tolist()) if n})
        purchases_by_exam: dict[str | None, set[str]] = defaultdict(set)
        width = len(live.purchases) + 1
        pairs = np.unique((exam[open_].astype(np.int64) + 1) * width + purchase[open_])
        for e, p in zip((pairs // width - 1).tolist(), (pairs % width).tolist()):
            purchases_by_exam[live.exams[e] if e >= 0 else None].add(live.purchases[p])
        per_purchase = set(purchases_by_exam.pop(None, set())) - changed
        slices, rolling_live = [], []
        for exam_code in sorted(set(by_exam) | set(purchases_by_exam)):
            extra = purchases_by_exam.get(exam_code, set()) - per_purchase - changed
            if self._whole(exam_code) or by_exam[exam_code] > cap:
                # Its slice would overflow the cap: only purchases holding open vouchers.
                per_purchase |= extra
            elif len(extra) < _pages(by_exam[exam_code], self.page):
                per_purchase |= extra
                rolling_live.append(everything.narrowed(storeExamCode=exam_code))
            else:
                slices.append(everything.narrowed(storeExamCode=exam_code))
        planned_cost = sum(_pages(by_exam[q.params["storeExamCode"]], self.page) for q in slices) + len(per_purchase)
        if len(live) <= cap and _pages(len(live), self.page) <= planned_cost:
            # The whole live slice in one query is cheaper: it reaches unlinked vouchers too.
            slices, per_purchase, rolling_live = [everything], set(), []
            planned_cost = _pages(len(live), self.page)
        rolling = self.rolling(rolling_live, changed)
        # A purchase re-checked whole tonight needs no separate read of its open vouchers.
        whole_tonight = {q.params["purchaseCode"] for q in rolling if "purchaseCode" in q.params}
        queries = [Query.of("vouchers", purchaseCode=pc) for pc in sorted(changed)]
        queries += slices
        queries += [everything.narrowed(purchaseCode=pc) for pc in sorted(per_purchase - whole_tonight)]
        queries += rolling
        # Rolling queries are settled slices: assume a page each, the exact size is unknown.
        self.estimated_requests = planned_cost + len(changed) + len(rolling)
        if slices == [everything]:
            watched = open_
        else:
            by_purchase = per_purchase | changed | whole_tonight
            sliced = {q.params["storeExamCode"] for q in slices}
            watched = open_ & (
                np.isin(purchase, [i for i, pc in enumerate(live.purchases) if pc in by_purchase])
                | np.isin(exam, [i for i, e in enumerate(live.exams) if e in sliced])
            )
        self.counts.update(changed_purchases=len(changed), exam_slices=len(slices), purchases_open=len(per_purchase),
                           rolling_queries=len(rolling), open_vouchers=int(open_.sum()), night=self.night)
        return queries, np.flatnonzero(watched)

    def full_read_estimate(self) -> int:
        """Requests a full read would take: every voucher in pages, plus a request per purchase the full
        plan reads one by one (programs over the cap, and vouchers not linked to an exam)."""
        live = self.snapshot.live
        unlinked = set(self.snapshot.unlinked_settled) | live.purchase_codes(live.columns.exam < 0)
        return _pages(self.snapshot.vouchers, self.page) + len(self.full.whole_purchases() | unlinked)

    def changed_purchases(self) -> set[str]:
        """Purchases new since the last run, or whose status or quantity moved."""
        changed = set()
        for p in self.catalog.purchases():
            code = p["voucherPurchaseCode"]
            if self.snapshot.purchases.get(code) != (p.get("status"), int(p.get("quantity") or 0)):
                changed.add(code)
        return changed

    def _whole(self, exam: str) -> bool:
        """Whether the full plan reads this exam's programs purchase by purchase (slices over the cap)."""
        programs = self.full.programs_by_exam.get(exam)
        return bool(programs) and programs <= self.full.whole_programs

    def rolling(self, live_slices: list[Query], already: set[str]) -> list[Query]:
        """Tonight's share of the settled vouchers: used, deactivated, or expired unused.

        Exam slices where they fit under the cap; purchases, whole, for programs
        whose slices do not, and for settled vouchers not linked to an exam.
        """
        exams = [e for e in self.full.exams if not self._whole(e)]
        settled = [Query.of("vouchers", isUsed=True, isActive=a, storeExamCode=e) for a in (True, False) for e in exams]
        settled += [Query.of("vouchers", isUsed=False, isActive=False, storeExamCode=e) for e in exams]
        tonight = [q for q in settled + live_slices if slot(q.describe(), self.nights) == self.night]
        purchases = set(self.snapshot.unlinked_settled) | self.full.whole_purchases()
        live = self.snapshot.live
        purchases |= live.purchase_codes((live.columns.exam < 0) & ~self.open)
        tonight += [Query.of("vouchers", purchaseCode=pc) for pc in sorted(purchases - already)
                    if slot(pc, self.nights) == self.night]
        return tonight

    def read(self, workers: int) -> Iterator[list[dict[str, Any]]]:
        """Yield tonight's vouchers once each, page by page."""
        client = self.catalog.client
        seen = SeenIds()
        yield from read_all(client, self.queries, self.full.split, workers=workers, seen=seen)
        left = self.watched[~seen.known(self.snapshot.live.columns.id_hashes[self.watched])]
        self.counts.update(left_open=len(left))
        if len(left):
            log.info("vouchers: %d open vouchers were used or deactivated since the last run; re-reading them",
                     len(left))
            yield from read_all(client, self.leaver_queries(left), self.full.split, workers=workers, seen=seen)
        self.counts.update(vouchers_read=len(seen))

    def leaver_queries(self, left: np.ndarray) -> list[Query]:
        """One query per voucher (rows of the snapshot), or per purchase where that is cheaper."""
        live = self.snapshot.live
        by_purchase: dict[str, list[str]] = defaultdict(list)
        for row in left.tolist():
            by_purchase[live.purchases[live.columns.purchase[row]]].append(live.columns.codes[row].decode())
        sizes = {p["voucherPurchaseCode"]: int(p.get("quantity") or 0) for p in self.catalog.purchases()}
        queries: list[Query] = []
        for purchase, codes in sorted(by_purchase.items()):
            if len(codes) > _pages(sizes.get(purchase, 0), self.page):
                queries.append(Query.of("vouchers", purchaseCode=purchase))
            else:
                queries += [Query.of("vouchers", voucherCode=c) for c in sorted(codes)]
        return queries
