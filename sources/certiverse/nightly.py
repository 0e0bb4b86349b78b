"""Nightly voucher reads: what can have changed since the last run, and a rolling re-check.

The API has no "changed since" filter. What the data tells instead:

* every voucher that can still change by itself (unused and active) sits in the
  slice ``isUsed=false&isActive=true``, which is read whole every night (split
  by exam under the cap). Re-activated vouchers re-enter it, expired-but-active
  ones stay in it, so their expiry moves are seen the same night;
* a voucher that was in that slice last night and is not there tonight was used
  or deactivated: it is fetched again on its own (or with its purchase);
* new purchases, and purchases whose status or quantity moved, are read whole;
* live vouchers not linked to an exam escape the exam slices: their purchases are
  read one by one;
* the rest (used or deactivated vouchers: "settled") is re-read in a rolling
  re-check, 1/N of the exam slices a night, so each is re-read every N nights.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterator

from .client import Query
from .plans import Catalog, VoucherPlan
from .reader import read_all

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    """What the warehouse held after the last successful load (current rows only)."""

    # voucher id -> (voucher code, purchase code, linked to an exam) of unused, active vouchers
    live: dict[str, tuple[str, str, bool]] = field(default_factory=dict)
    # purchase code -> (status, quantity)
    purchases: dict[str, tuple[str, int]] = field(default_factory=dict)
    # purchases holding settled vouchers that no exam slice reaches
    unlinked_settled: set[str] = field(default_factory=set)


def slot(key: str, nights: int) -> int:
    """The night (0..nights-1) of the rolling re-check a key belongs to; stable across runs."""
    return zlib.crc32(key.encode()) % nights


class NightlyPlan:
    """Reads the vouchers that can have changed, plus tonight's share of the rest."""

    def __init__(self, catalog: Catalog, snapshot: Snapshot, night: int, nights: int) -> None:
        self.catalog = catalog
        self.snapshot = snapshot
        self.night = night % nights
        self.nights = nights
        self.full = VoucherPlan(catalog)
        self.counts: dict[str, int] = {}

    def live_roots(self) -> list[Query]:
        live = Query.of("vouchers", isUsed=False, isActive=True)
        estimate = len(self.snapshot.live)
        return self.full.split(live) if estimate > self.catalog.record_cap else [live]

    def changed_purchases(self) -> list[str]:
        """Purchases new since the last run, or whose status or quantity moved."""
        changed = []
        for p in self.catalog.purchases():
            code = p["voucherPurchaseCode"]
            before = self.snapshot.purchases.get(code)
            if before != (p.get("status"), int(p.get("quantity") or 0)):
                changed.append(code)
        return changed

    def purchase_queries(self) -> list[Query]:
        """Changed purchases whole, and purchases with live vouchers no exam slice reaches."""
        unlinked_live = {pc for _, pc, linked in self.snapshot.live.values() if not linked}
        tonight = {pc for pc in self.snapshot.unlinked_settled if slot(pc, self.nights) == self.night}
        changed = set(self.changed_purchases())
        self.counts.update(changed_purchases=len(changed), unlinked_live=len(unlinked_live - changed),
                           unlinked_settled=len(tonight - changed - unlinked_live))
        queries = [Query.of("vouchers", purchaseCode=pc) for pc in sorted(changed | tonight)]
        queries += [Query.of("vouchers", purchaseCode=pc, isUsed=False, isActive=True)
                    for pc in sorted(unlinked_live - changed - tonight)]
        return queries

    def recheck_roots(self) -> list[Query]:
        """Tonight's share of the settled slices (used, or unused and deactivated)."""
        slices = [Query.of("vouchers", isUsed=True, isActive=a, storeExamCode=e)
                  for a in (True, False) for e in self.full.exams]
        slices += [Query.of("vouchers", isUsed=False, isActive=False, storeExamCode=e) for e in self.full.exams]
        return [q for q in slices if slot(q.describe(), self.nights) == self.night]

    def read(self, workers: int) -> Iterator[list[dict[str, Any]]]:
        """Yield tonight's vouchers once each, page by page."""
        client = self.catalog.client
        seen: set = set()
        roots = self.live_roots() + self.purchase_queries() + self.recheck_roots()
        for page in read_all(client, roots, self.full.split, workers=workers, seen=seen):
            yield page
        left = [vid for vid in self.snapshot.live if vid not in seen]
        self.counts.update(left_live_slice=len(left))
        if left:
            log.info("vouchers: %d left the live slice since the last run (used or deactivated); re-reading them",
                     len(left))
            yield from read_all(client, self.leaver_queries(left), self.full.split, workers=workers, seen=seen)
        self.counts.update(vouchers_read=len(seen))

    def leaver_queries(self, left: list[str]) -> list[Query]:
        """One query per voucher, or per purchase where that is cheaper."""
        by_purchase: dict[str, list[str]] = defaultdict(list)
        for vid in left:
            code, purchase, _ = self.snapshot.live[vid]
            by_purchase[purchase].append(code)
        sizes = {p["voucherPurchaseCode"]: int(p.get("quantity") or 0) for p in self.catalog.purchases()}
        page = self.catalog.client.page_size or 100
        queries: list[Query] = []
        for purchase, codes in by_purchase.items():
            if len(codes) > math.ceil(max(sizes.get(purchase, 0), 1) / page):
                queries.append(Query.of("vouchers", purchaseCode=purchase))
            else:
                queries += [Query.of("vouchers", voucherCode=c) for c in codes]
        return queries
