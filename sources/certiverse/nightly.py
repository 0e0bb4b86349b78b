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
from typing import Any, Iterator

from .client import Query
from .plans import Catalog, VoucherPlan
from .reader import SeenIds, read_all

log = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 100  # only for estimates before the first page has told the real one


@dataclass(frozen=True, slots=True)
class LiveVoucher:
    """An unused, active voucher as the warehouse last saw it."""

    code: str
    purchase: str
    exam: str | None
    expires_at: dt.datetime | None


@dataclass
class Snapshot:
    """What the warehouse held after the last successful load (current rows only)."""

    live: dict[str, LiveVoucher] = field(default_factory=dict)  # by voucher id
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

    def _is_open(self, v: LiveVoucher) -> bool:
        return v.expires_at is None or v.expires_at >= self.now

    def _plan(self) -> tuple[list[Query], set[str]]:
        """Tonight's queries, and the live vouchers they must return unless the vouchers changed."""
        live = self.snapshot.live
        open_ = {vid: v for vid, v in live.items() if self._is_open(v)}
        changed = self.changed_purchases()
        cap = self.catalog.record_cap
        everything = Query.of("vouchers", isUsed=False, isActive=True)
        by_exam: Counter[str] = Counter(v.exam for v in live.values() if v.exam)
        purchases_by_exam: dict[str | None, set[str]] = defaultdict(set)
        for v in open_.values():
            purchases_by_exam[v.exam].add(v.purchase)
        per_purchase = set(purchases_by_exam.pop(None, set())) - changed
        slices, rolling_live = [], []
        for exam in sorted(set(by_exam) | set(purchases_by_exam)):
            extra = purchases_by_exam.get(exam, set()) - per_purchase - changed
            if self._whole(exam) or by_exam[exam] > cap:
                # Its slice would overflow the cap: only purchases holding open vouchers.
                per_purchase |= extra
            elif len(extra) < _pages(by_exam[exam], self.page):
                per_purchase |= extra
                rolling_live.append(everything.narrowed(storeExamCode=exam))
            else:
                slices.append(everything.narrowed(storeExamCode=exam))
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
        watched = {
            vid for vid, v in open_.items()
            if slices == [everything] or v.purchase in per_purchase or v.purchase in changed
            or v.purchase in whole_tonight
            or (v.exam is not None and everything.narrowed(storeExamCode=v.exam) in slices)
        }
        self.counts.update(changed_purchases=len(changed), exam_slices=len(slices), purchases_open=len(per_purchase),
                           rolling_queries=len(rolling), open_vouchers=len(open_), night=self.night)
        return queries, watched

    def full_read_estimate(self) -> int:
        """Requests a full read would take: every voucher in pages, plus a request per purchase the full
        plan reads one by one (programs over the cap, and vouchers not linked to an exam)."""
        unlinked = set(self.snapshot.unlinked_settled) | {v.purchase for v in self.snapshot.live.values() if not v.exam}
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
        purchases |= {v.purchase for v in self.snapshot.live.values() if v.exam is None and not self._is_open(v)}
        tonight += [Query.of("vouchers", purchaseCode=pc) for pc in sorted(purchases - already)
                    if slot(pc, self.nights) == self.night]
        return tonight

    def read(self, workers: int) -> Iterator[list[dict[str, Any]]]:
        """Yield tonight's vouchers once each, page by page."""
        client = self.catalog.client
        seen = SeenIds()
        yield from read_all(client, self.queries, self.full.split, workers=workers, seen=seen)
        left = sorted(vid for vid in self.watched if vid not in seen)
        self.counts.update(left_open=len(left))
        if left:
            log.info("vouchers: %d open vouchers were used or deactivated since the last run; re-reading them",
                     len(left))
            yield from read_all(client, self.leaver_queries(left), self.full.split, workers=workers, seen=seen)
        self.counts.update(vouchers_read=len(seen))

    def leaver_queries(self, left: list[str]) -> list[Query]:
        """One query per voucher, or per purchase where that is cheaper."""
        by_purchase: dict[str, list[str]] = defaultdict(list)
        for vid in left:
            v = self.snapshot.live[vid]
            by_purchase[v.purchase].append(v.code)
        sizes = {p["voucherPurchaseCode"]: int(p.get("quantity") or 0) for p in self.catalog.purchases()}
        queries: list[Query] = []
        for purchase, codes in sorted(by_purchase.items()):
            if len(codes) > _pages(sizes.get(purchase, 0), self.page):
                queries.append(Query.of("vouchers", purchaseCode=purchase))
            else:
                queries += [Query.of("vouchers", voucherCode=c) for c in codes]
        return queries
