"""The nightly read of vouchers: what can have changed since the last run, and the rolling re-check.

Words as defined in ``planning.py`` (open, settled, linked, live, the rolling re-check).

The API has no "changed since" filter. What the data tells instead:

* an open voucher can change any day: every one is re-read every night, through
  its exam's slice ``isUsed=false&isActive=true&storeExamCode=E`` or through its
  purchase (``purchaseCode=P&isUsed=false&isActive=true``), per exam whichever
  costs fewer requests by the warehouse's own counts (or the whole open slice, if
  that is under the cap and cheaper). Unlinked ones only through their purchase;
* an open voucher that does not come back was used or deactivated (or slipped past
  a page while the API changed under the read): it is fetched on its own, or with
  its purchase where that is cheaper;
* new purchases, and purchases whose status or quantity moved, are read whole;
* settled vouchers get the rolling re-check.

The plan is a chain of steps that return values: ``open_rows`` →
``changed_purchases`` → ``cover_open_vouchers`` → ``rolling_queries`` →
``NightlyPlan``; ``NightlyRead`` reads it and fetches the open vouchers that left.
"""

from __future__ import annotations

import datetime as dt
import logging
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

import numpy as np

from .catalog import Catalog
from .client import Query
from .plans import VoucherFacts, VoucherSplit, expected_records, pages
from .reader import SeenIds, read_all
from .snapshot import LiveVouchers, Snapshot, epoch_us

log = logging.getLogger(__name__)

OPEN_SLICE = Query.of("vouchers", isUsed=False, isActive=True)


def slot(key: str, nights: int) -> int:
    """The night (0..nights-1) of the rolling re-check a key belongs to; stable across runs."""
    return zlib.crc32(key.encode()) % nights


def open_rows(live: LiveVouchers, since: dt.datetime) -> np.ndarray:
    """Which live rows are open: not expired at ``since``, the start of the last run (a voucher that
    expired after it may have changed before it expired)."""
    return live.columns.expires >= epoch_us(since)


def changed_purchases(purchases: Iterable[dict[str, Any]], known: Mapping[str, tuple[str, int]]) -> set[str]:
    """Purchases new since the last run, or whose status or quantity moved."""
    return {p["voucherPurchaseCode"] for p in purchases
            if known.get(p["voucherPurchaseCode"]) != (p.get("status"), int(p.get("quantity") or 0))}


@dataclass(frozen=True)
class OpenCover:
    """The queries that re-read every open voucher tonight (changed purchases aside)."""

    queries: tuple[Query, ...]
    exams_sliced: frozenset[str]  # exams whose open slice is read tonight (all: the whole open slice)
    exams_by_purchase: frozenset[str]  # exams whose open vouchers go through their purchases tonight
    requests: int  # estimated


def cover_open_vouchers(live: LiveVouchers, is_open: np.ndarray, changed: set[str], by_purchase: frozenset[str],
                        facts: VoucherFacts, page: int, cap: int) -> OpenCover:
    """Per exam, the cheaper of its open slice and its purchases' open vouchers; unlinked ones by purchase.

    An exam slice returns every live voucher of the exam (expired ones too), so its size
    is the exam's live count. Exams of programs read by purchase, and exams whose slice
    is over the cap, go by purchase.
    """
    columns = live.columns
    slice_size = Counter({live.exams[e]: int(n) for e, n in enumerate(
        np.bincount(columns.exam[columns.exam >= 0], minlength=len(live.exams)).tolist()) if n})
    open_by_exam: dict[str | None, Counter[str]] = defaultdict(Counter)
    for exam, purchase in zip(columns.exam[is_open].tolist(), columns.purchase[is_open].tolist()):
        code = live.purchases[purchase]
        if code not in changed:
            open_by_exam[live.exams[exam] if exam >= 0 else None][code] += 1
    via_purchase: Counter[str] = Counter(open_by_exam.pop(None, Counter()))
    sliced, by_purchase_exams = set(), set()
    for exam, held in sorted(open_by_exam.items()):
        programs = facts.programs_by_exam.get(exam, frozenset())
        purchase_cost = sum(pages(n, page) for c, n in held.items() if c not in via_purchase)
        if (programs and programs <= by_purchase) or slice_size[exam] > cap \
                or purchase_cost < pages(slice_size[exam], page):
            via_purchase.update(held)
            by_purchase_exams.add(exam)
        else:
            sliced.add(exam)
    requests = sum(pages(slice_size[e], page) for e in sliced) + sum(pages(n, page) for n in via_purchase.values())
    if len(live) <= cap and pages(len(live), page) <= requests:
        # The whole open slice in one query is cheaper, and it reaches unlinked vouchers too.
        return OpenCover((OPEN_SLICE,), frozenset(slice_size) | {""}, frozenset(), pages(len(live), page))
    queries = [OPEN_SLICE.narrowed(storeExamCode=e) for e in sorted(sliced)]
    queries += [OPEN_SLICE.narrowed(purchaseCode=c) for c in sorted(via_purchase)]
    return OpenCover(tuple(queries), frozenset(sliced), frozenset(by_purchase_exams), requests)


def rolling_queries(facts: VoucherFacts, by_purchase: frozenset[str], cover: OpenCover, purchases_unlinked_settled:
                    set[str], skip: set[str], night: int, nights: int, inactive_whole: frozenset[bool] = frozenset()
                    ) -> list[Query]:
    """Tonight's share of the settled vouchers: every query belongs to one night of ``nights``.

    Settled vouchers of programs read by exam: their exam slices (used, or deactivated), and
    the open slice of exams whose open vouchers went by purchase (its expired vouchers are
    settled too). The deactivated side of an ``isUsed`` value in ``inactive_whole`` (expected
    under the cap) is one query instead of one per exam: most of those slices are small or
    empty. Purchases, whole: those of programs read by purchase, and those holding settled
    vouchers that are not linked; ``skip`` (read whole tonight anyway) aside.
    """
    exams = sorted(e for e, programs in facts.programs_by_exam.items() if not programs <= by_purchase)
    settled = [Query.of("vouchers", isUsed=True, isActive=True, storeExamCode=e) for e in exams]
    for used in (True, False):
        inactive = Query.of("vouchers", isUsed=used, isActive=False)
        settled += [inactive] if used in inactive_whole else [inactive.narrowed(storeExamCode=e) for e in exams]
    settled += [OPEN_SLICE.narrowed(storeExamCode=e) for e in sorted(cover.exams_by_purchase)]
    tonight = [q for q in settled if slot(q.describe(), nights) == night]
    whole = {c for p in by_purchase for c in facts.purchases_by_program.get(p, ())} | purchases_unlinked_settled
    tonight += [Query.of("vouchers", purchaseCode=c) for c in sorted(whole - skip) if slot(c, nights) == night]
    return tonight


@dataclass(frozen=True)
class NightlyPlan:
    """Tonight's queries, the live rows they must return unless those vouchers changed, and the estimate."""

    queries: tuple[Query, ...]
    watched: np.ndarray  # rows of the snapshot's live vouchers: the open ones
    estimated_requests: int
    counts: dict[str, int] = field(default_factory=dict)


def plan_nightly(facts: VoucherFacts, snapshot: Snapshot, by_purchase: frozenset[str], since: dt.datetime,
                 night: int, nights: int, page: int, cap: int) -> NightlyPlan:
    """Chain the nightly steps into one plan."""
    live = snapshot.live
    is_open = open_rows(live, since)
    changed = changed_purchases(facts.purchases.values(), snapshot.purchases)
    cover = cover_open_vouchers(live, is_open, changed, by_purchase, facts, page, cap)
    unlinked_settled = set(snapshot.unlinked_settled) | live.purchase_codes((live.columns.exam < 0) & ~is_open)
    # Deactivated vouchers: the warehouse's current vouchers less the used and the live ones (few are
    # used and deactivated); a side expected under the cap is read as one query.
    unused_inactive = snapshot.vouchers - sum(facts.used.values()) - len(live)
    inactive_whole = frozenset({True} | ({False} if unused_inactive <= cap else set()))
    rolling = rolling_queries(facts, by_purchase, cover, unlinked_settled, changed, night, nights, inactive_whole)
    whole_tonight = {q.params["purchaseCode"] for q in rolling if "purchaseCode" in q.params} | changed
    # A purchase read whole tonight needs no separate read of its open vouchers.
    open_queries = [q for q in cover.queries if q.params.get("purchaseCode") not in whole_tonight]
    queries = [Query.of("vouchers", purchaseCode=c) for c in sorted(changed)] + open_queries + rolling
    # Rolling queries are settled slices or purchases: a page each (their sizes are not kept).
    estimate = cover.requests + sum(pages(facts.quantity(c), page) for c in changed if c in facts.purchases)
    estimate += len(rolling)
    counts = {"changed_purchases": len(changed), "exam_slices": len(cover.exams_sliced),
              "open_queries": len(open_queries), "rolling_queries": len(rolling),
              "open_vouchers": int(is_open.sum()), "night": night}
    return NightlyPlan(tuple(queries), np.flatnonzero(is_open), estimate, counts)


@dataclass
class NightlyRead:
    """Reads tonight's plan, then the open vouchers that did not come back; ``counts`` once done."""

    catalog: Catalog
    snapshot: Snapshot
    plan: NightlyPlan
    split: VoucherSplit
    page: int
    expected: Callable[[Query], int | None] | None = None  # records a query should return, where known
    counts: dict[str, int] = field(default_factory=dict)

    def pages(self, workers: int) -> Iterator[list[dict[str, Any]]]:
        client, seen = self.catalog.client, SeenIds()
        yield from read_all(client, self.plan.queries, self.split, workers=workers, seen=seen,
                            expected=self.expected)
        watched = self.plan.watched
        left = watched[~seen.known(self.snapshot.live.columns.id_hashes[watched])]
        if len(left):
            log.info("vouchers: %d open vouchers were used or deactivated since the last run; re-reading them",
                     len(left))
            yield from read_all(client, leaver_queries(self.snapshot.live, left, self.catalog.purchases(), self.page),
                                self.split, workers=workers, seen=seen)
        self.counts = {**self.plan.counts, "left_open": len(left), "vouchers_read": len(seen)}


def expected_open_or_counted(facts: VoucherFacts, live: LiveVouchers) -> Callable[[Query], int | None]:
    """Records a nightly query should return: an open slice (whole, an exam's or a purchase's) holds the
    live vouchers the warehouse has there; anything else, what the counters say (``expected_records``)."""
    by_exam, by_purchase = live.count_by("exam"), live.count_by("purchase")

    def expected(query: Query) -> int | None:
        params = query.params
        if params.get("isUsed") == "false" and params.get("isActive") == "true":
            rest = set(params) - {"isUsed", "isActive"}
            if not rest:
                return len(live)
            if rest == {"storeExamCode"}:
                return by_exam.get(params["storeExamCode"], 0)
            if rest == {"purchaseCode"}:
                return by_purchase.get(params["purchaseCode"], 0)
        return expected_records(facts, query)

    return expected


def leaver_queries(live: LiveVouchers, left: np.ndarray, purchases: Iterable[dict[str, Any]], page: int
                   ) -> list[Query]:
    """One query per voucher (rows of the snapshot), or per purchase where that is fewer requests."""
    codes_by_purchase: dict[str, list[str]] = defaultdict(list)
    for row in left.tolist():
        index = live.columns.purchase[row]
        # "": a voucher the API sent without its purchase code or its own (the reference says never)
        codes_by_purchase[live.purchases[index] if index >= 0 else ""].append(live.columns.codes[row].decode())
    sizes = {p["voucherPurchaseCode"]: int(p.get("quantity") or 0) for p in purchases}
    queries: list[Query] = []
    for purchase, codes in sorted(codes_by_purchase.items()):
        if purchase and (len(codes) > pages(sizes.get(purchase, 0), page) or not all(codes)):
            queries.append(Query.of("vouchers", purchaseCode=purchase))
        else:
            queries += [Query.of("vouchers", voucherCode=c) for c in sorted(codes) if c]
    return queries
