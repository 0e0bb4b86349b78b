"""The full read of vouchers: queries that cover every voucher, with as few requests as the API allows.

Words as defined in ``planning.py`` (open, settled, linked, read by purchase).

Every voucher is in exactly one of ``isUsed=true|false``; a slice over the cap
splits by ``isActive`` (still covering), then by ``storeExamCode`` over the exams
the programs list. Exam slices miss unlinked vouchers, which only their purchase
reaches, so each program is either **read by exam** (its exam slices, then a
completion pass for its purchases that came back short) or **read by purchase**
(each of its purchases once, whole), whichever is estimated cheaper:

    by purchase = sum of pages(quantity) over its purchases
    by exam     = its exam slices in each over-cap slice (its counters spread evenly over its exams)
                  + pages(quantity) of each purchase likely to hold unlinked vouchers

How likely a purchase holds unlinked vouchers is known exactly from the warehouse
on later runs; on a first run it is learnt from a small sample of purchases read
whole (their vouchers are part of the read), by stratum: programs of one exam or
several, purchases with vouchers left or all used. If the estimate is not below
reading every purchase whole, every purchase is read whole.

The plan is a chain of steps that return values: ``voucher_facts`` →
``over_cap_slices`` → ``LinkRates`` (from the warehouse, or ``FullRead._sample``) →
``choose_programs_read_by_purchase`` → ``full_read_queries`` and ``voucher_split`` →
the read → ``purchases_to_complete`` → the completion pass (all chained in ``FullRead.pages``).
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Iterable, Iterator, Sequence

from .catalog import Catalog, expected_vouchers
from .client import Query
from .reader import SeenIds, read_all
from .values import flag

log = logging.getLogger(__name__)

SAMPLE_FIRST = 4  # purchases per stratum read whole to learn how often they hold unlinked vouchers
SAMPLE_MAX = 12  # ... and up to this many when the first ones disagree
Stratum = tuple[bool, bool]  # (program sells several exams, purchase has vouchers left)


def pages(n: float, page: int) -> int:
    """Requests to read ``n`` records (a query with none still costs one)."""
    return max(1, math.ceil(n / page))


@dataclass(frozen=True)
class VoucherFacts:
    """What the catalog says about where vouchers are, before any voucher is read."""

    exams_by_program: dict[str, tuple[str, ...]]
    programs_by_exam: dict[str, frozenset[str]]
    purchases_by_program: dict[str, tuple[str, ...]]  # purchases that may hold vouchers
    purchases: dict[str, dict[str, Any]]  # the plan fields of each purchase, by code
    used: Counter[str]  # per program: its purchases' quantityUsed
    unused: Counter[str]  # per program: its purchases' quantityRemaining

    def stratum(self, code: str) -> Stratum:
        purchase = self.purchases[code]
        several = len(self.exams_by_program.get(purchase.get("programName", ""), ())) > 1
        return several, bool(purchase.get("quantityRemaining"))

    def quantity(self, code: str) -> int:
        return int(self.purchases[code].get("quantity") or 0)


def voucher_facts(programs: Sequence[dict[str, Any]], purchases: Sequence[dict[str, Any]]) -> VoucherFacts:
    """Exams per program and purchases per program (with their counters) from the catalog."""
    exams_by_program = {p.get("name", ""): tuple(e["code"] for e in p.get("storeExams") or [] if e.get("code"))
                        for p in programs}
    programs_by_exam: dict[str, set[str]] = defaultdict(set)
    for name, codes in exams_by_program.items():
        for code in codes:
            programs_by_exam[code].add(name)
    by_program: dict[str, list[str]] = defaultdict(list)
    used: Counter[str] = Counter()
    unused: Counter[str] = Counter()
    for p in purchases:
        if expected_vouchers(p) == 0:
            continue
        program = p.get("programName", "")
        by_program[program].append(p["voucherPurchaseCode"])
        used[program] += int(p.get("quantityUsed") or 0)
        unused[program] += int(p.get("quantityRemaining") or 0)
    return VoucherFacts(exams_by_program, {e: frozenset(ps) for e, ps in programs_by_exam.items()},
                        {k: tuple(v) for k, v in by_program.items()},
                        {p["voucherPurchaseCode"]: p for p in purchases}, used, unused)


def over_cap_slices(facts: VoucherFacts, cap: int) -> frozenset[bool]:
    """The ``isUsed`` values whose active slice is expected over the cap (from the counters: few vouchers
    are deactivated, so the active slice is taken to hold them all)."""
    totals = {True: sum(facts.used.values()), False: sum(facts.unused.values())}
    return frozenset(flag for flag, n in totals.items() if n > cap)


@dataclass(frozen=True)
class LinkRates:
    """How likely a purchase holds unlinked vouchers: known per purchase, or a rate per stratum."""

    known: frozenset[str] | None = None  # purchases that hold some (from the warehouse)
    by_stratum: dict[Stratum, float] = field(default_factory=dict)

    def likelihood(self, facts: VoucherFacts, code: str) -> float:
        if self.known is not None:
            return 1.0 if code in self.known else 0.0
        return self.by_stratum.get(facts.stratum(code), 1.0)


def sample_order(codes: Iterable[str]) -> list[str]:
    """A fixed pseudo-random order (the same every run, unrelated to purchase age or size)."""
    return sorted(codes, key=lambda c: (zlib.crc32(c.encode()), c))


def holds_unlinked(vouchers: Iterable[dict[str, Any]], over: frozenset[bool]) -> set[str]:
    """Purchases with a voucher that no exam slice of an over-cap slice reaches."""
    return {v.get("voucherPurchaseCode") for v in vouchers
            if not v.get("storeExamCode") and flag(v.get("isActive")) and bool(flag(v.get("isUsed"))) in over}


def choose_programs_read_by_purchase(facts: VoucherFacts, rates: LinkRates, over: frozenset[bool], page: int,
                                     cap: int, already_whole: frozenset[str] = frozenset()) -> frozenset[str]:
    """The programs cheaper to read purchase by purchase than by exam slices and a completion pass.

    Also every program whose slices would exceed the cap even spread evenly over its exams, and
    purchases of programs the program list does not know (no exam slice is sure to reach them).
    """
    chosen = set()
    for program, codes in facts.purchases_by_program.items():
        exams = facts.exams_by_program.get(program)
        if not exams or not over:
            if exams is None:
                chosen.add(program)
            continue
        counts = [facts.used[program] if flag else facts.unused[program] for flag in over]
        if max(counts) > cap * len(exams):
            chosen.add(program)
            continue
        rest = [c for c in codes if c not in already_whole]
        by_purchase = sum(pages(facts.quantity(c), page) for c in rest)
        by_exam = sum(len(exams) * pages(n / len(exams), page) for n in counts)
        by_exam += sum(rates.likelihood(facts, c) * pages(facts.quantity(c), page) for c in rest)
        if by_purchase <= by_exam:
            chosen.add(program)
    return frozenset(chosen)


def estimated_requests(facts: VoucherFacts, by_purchase: frozenset[str], rates: LinkRates,
                       over: frozenset[bool], page: int) -> tuple[int, int]:
    """(this plan, every purchase whole): requests estimated for the vouchers."""
    every_purchase = sum(pages(facts.quantity(c), page) for codes in facts.purchases_by_program.values()
                         for c in codes)
    plan = sum(pages(sum((facts.used if flag else facts.unused).values()), page) for flag in (True, False)
               if flag not in over) + len(over)  # under-cap slices whole; the inactive side of over-cap ones
    for program, codes in facts.purchases_by_program.items():
        if program in by_purchase:
            plan += sum(pages(facts.quantity(c), page) for c in codes)
            continue
        exams = facts.exams_by_program.get(program) or ()
        for flag in over:
            n = facts.used[program] if flag else facts.unused[program]
            plan += len(exams) * pages(n / max(len(exams), 1), page)
        if over:
            plan += round(sum(rates.likelihood(facts, c) * pages(facts.quantity(c), page) for c in codes))
    return plan, every_purchase


@dataclass(frozen=True)
class VoucherSplit:
    """How to narrow a voucher query the API refused (422); the children together cover the parent.

    isUsed, then isActive (closed sets), then the exam slices worth reading (those of
    programs read by exam), then, for an exam slice itself over the cap, its programs'
    purchases (not already read whole) within the same slice. A purchase over the cap
    splits by its booleans; below that nothing is left.
    """

    exams: tuple[str, ...]
    purchases_by_exam: dict[str, tuple[str, ...]]

    def __call__(self, query: Query) -> list[Query] | None:
        params = query.params
        if "purchaseCode" in params or "voucherCode" in params:
            for flag in ("isUsed", "isActive"):
                if flag not in params:
                    return [query.narrowed(**{flag: True}), query.narrowed(**{flag: False})]
            return None
        for flag in ("isUsed", "isActive"):
            if flag not in params:
                return [query.narrowed(**{flag: True}), query.narrowed(**{flag: False})]
        if "storeExamCode" not in params:
            return [query.narrowed(storeExamCode=e) for e in self.exams]
        return [query.narrowed(purchaseCode=c) for c in self.purchases_by_exam.get(params["storeExamCode"], ())]


def voucher_split(facts: VoucherFacts, by_purchase: frozenset[str], read_whole: frozenset[str]) -> VoucherSplit:
    """The split rule for a plan that reads ``by_purchase`` programs (and ``read_whole`` purchases) whole."""
    exams = sorted(e for e, programs in facts.programs_by_exam.items() if not programs <= by_purchase)
    purchases_by_exam = {
        e: tuple(c for p in sorted(facts.programs_by_exam[e]) for c in facts.purchases_by_program.get(p, ())
                 if c not in read_whole)
        for e in exams
    }
    return VoucherSplit(tuple(exams), purchases_by_exam)


def full_read_queries(facts: VoucherFacts, by_purchase: frozenset[str], over: frozenset[bool],
                      split: VoucherSplit, read_whole: frozenset[str]) -> list[Query]:
    """The two isUsed slices (those expected over the cap already split to exam slices), then every
    purchase of the programs read by purchase, whole, but for those already read."""
    queries: list[Query] = []
    for flag in (True, False):
        q = Query.of("vouchers", isUsed=flag)
        if flag in over:
            active, inactive = split(q) or []
            queries += (split(active) or []) + [inactive]
        else:
            queries.append(q)
    if set(facts.purchases_by_program) <= by_purchase:
        queries = []  # every purchase is read whole: no slice adds anything
    codes = (c for p in sorted(by_purchase) for c in facts.purchases_by_program.get(p, ()) if c not in read_whole)
    return queries + [Query.of("vouchers", purchaseCode=c) for c in codes]


def expected_records(facts: VoucherFacts, query: Query) -> int | None:
    """Records a voucher query should return by the purchases' counters; None where they do not say.

    Only for reading a long query's pages side by side (``read_all``): a guess too high costs a
    request per empty page, too low only time. The counters say nothing of deactivated vouchers
    (an ``isActive=true`` side is guessed at its whole ``isUsed`` side, ``isActive=false`` not at
    all) nor of how a program's vouchers spread over its exams (only exams of single-exam programs
    are guessed at).
    """
    params = query.params
    if (query.endpoint != "vouchers" or params.get("isActive") == "false"
            or set(params) - {"isUsed", "isActive", "purchaseCode", "storeExamCode"}):
        return None
    if "purchaseCode" in params:
        purchase = facts.purchases.get(params["purchaseCode"])
        if purchase is None or "storeExamCode" in params:
            return None
        used, unused = int(purchase.get("quantityUsed") or 0), int(purchase.get("quantityRemaining") or 0)
    elif "storeExamCode" in params:
        programs = facts.programs_by_exam.get(params["storeExamCode"], frozenset())
        if not programs or any(len(facts.exams_by_program.get(p, ())) != 1 for p in programs):
            return None
        used, unused = sum(facts.used[p] for p in programs), sum(facts.unused[p] for p in programs)
    else:
        used, unused = sum(facts.used.values()), sum(facts.unused.values())
    flag = params.get("isUsed")
    return used if flag == "true" else unused if flag == "false" else used + unused


def purchases_to_complete(facts: VoucherFacts, seen: Counter[str], read_whole: Iterable[str]) -> list[str]:
    """The completion pass: purchases whose vouchers seen fall short of what they should hold.

    A short purchase lost vouchers to exam slices (unlinked ones) or to activity during
    the read (page-number paging: a voucher that left a slice shifted another past us),
    so the pass always runs; it costs a request only per short purchase. A Complete
    purchase holds ``quantity`` vouchers; one in another status (its count is not
    documented) at least ``quantity`` or its counters' sum, whichever is more: one that
    holds fewer is read whole, which is safe.
    """
    whole = set(read_whole)
    short = []
    for code, purchase in facts.purchases.items():
        if code in whole:
            continue
        expected = expected_vouchers(purchase)
        if expected is None:
            counters = int(purchase.get("quantityUsed") or 0) + int(purchase.get("quantityRemaining") or 0)
            expected = max(int(purchase.get("quantity") or 0), counters)
        if seen[code] < expected:
            short.append(code)
    return short


@dataclass
class FullRead:
    """Reads every voucher once, page by page; ``counts`` says what it did once it is done."""

    catalog: Catalog
    page: int  # records per page (as learnt from the API, or a guess): for estimates only
    known_unlinked: frozenset[str] | None = None  # purchases holding unlinked vouchers, per the warehouse
    counts: dict[str, int] = field(default_factory=dict)

    def pages(self, workers: int) -> Iterator[list[dict[str, Any]]]:
        cap = self.catalog.record_cap
        facts = voucher_facts(self.catalog.programs(), self.catalog.purchases())
        over = over_cap_slices(facts, cap)
        seen, per_purchase = SeenIds(), Counter[str]()
        if self.known_unlinked is not None or not over:
            rates, sampled = LinkRates(known=self.known_unlinked), frozenset[str]()
        else:
            rates, sampled = yield from self._sample(facts, over, workers, seen, per_purchase)
        by_purchase = choose_programs_read_by_purchase(facts, rates, over, self.page, cap, sampled)
        plan, every_purchase = estimated_requests(facts, by_purchase, rates, over, self.page)
        if plan >= every_purchase:
            log.info("vouchers: slices (~%d requests) cost no less than every purchase whole (~%d)", plan,
                     every_purchase)
            by_purchase = frozenset(facts.purchases_by_program)
        split = voucher_split(facts, by_purchase, sampled)
        queries = full_read_queries(facts, by_purchase, over, split, sampled)
        read_whole = sampled | {q.params["purchaseCode"] for q in queries if "purchaseCode" in q.params}
        expected = partial(expected_records, facts)
        summary = yield from _counted(read_all(self.catalog.client, queries, split, workers=workers, seen=seen,
                                               expected=expected), per_purchase)
        short = purchases_to_complete(facts, per_purchase, read_whole)
        log.info("vouchers: %d programs read by purchase, %d purchases read whole, %d queries (exam slices: %s), "
                 "%d purchases to complete", len(by_purchase), len(read_whole), summary.answered,
                 summary.read_exam_slices, len(short))
        completion = (Query.of("vouchers", purchaseCode=c) for c in short)
        yield from _counted(read_all(self.catalog.client, completion, split, workers=workers, seen=seen,
                                     expected=expected), per_purchase)
        self.counts = {"programs_read_by_purchase": len(by_purchase), "purchases_sampled": len(sampled),
                       "purchases_read_whole": len(read_whole), "purchases_completed": len(short),
                       "vouchers_read": len(seen)}

    def _sample(self, facts: VoucherFacts, over: frozenset[bool], workers: int, seen: SeenIds,
                per_purchase: Counter[str]) -> Iterator[list[dict[str, Any]]]:
        """Read a few purchases of each stratum whole; returns (LinkRates, the purchases read)."""
        strata: dict[Stratum, list[str]] = defaultdict(list)
        for codes in facts.purchases_by_program.values():
            for code in codes:
                strata[facts.stratum(code)].append(code)
        order = {s: sample_order(codes) for s, codes in strata.items()}
        hits: Counter[Stratum] = Counter()
        taken: Counter[Stratum] = Counter()
        for first, last in ((0, SAMPLE_FIRST), (SAMPLE_FIRST, SAMPLE_MAX)):
            batch = [c for s, codes in order.items() if first == 0 or 0 < hits[s] < taken[s]
                     for c in codes[first:last]]
            unlinked: set[str] = set()
            client = self.catalog.client
            for page in read_all(client, [Query.of("vouchers", purchaseCode=c) for c in batch], workers=workers,
                                 seen=seen):
                per_purchase.update(v.get("voucherPurchaseCode") for v in page)
                unlinked |= holds_unlinked(page, over)
                yield page
            for code in batch:
                taken[facts.stratum(code)] += 1
                hits[facts.stratum(code)] += code in unlinked
        rates = {s: (hits[s] + 0.5) / (taken[s] + 1) for s in taken}
        log.info("vouchers: purchases holding unlinked vouchers, by stratum (several exams, vouchers left): %s",
                 {s: f"{hits[s]}/{taken[s]}" for s in taken})
        return LinkRates(by_stratum=rates), frozenset(c for s, codes in order.items() for c in codes[:taken[s]])


def _counted(pages_: Iterator[list[dict[str, Any]]], per_purchase: Counter[str]) -> Iterator[list[dict[str, Any]]]:
    """Pass pages on, counting vouchers per purchase; returns the reader's summary."""
    while True:
        try:
            page = next(pages_)
        except StopIteration as done:
            return done.value
        per_purchase.update(v.get("voucherPurchaseCode") for v in page)
        yield page


def read_purchases_whole(client: Any, codes: Iterable[str], workers: int,
                         expected: Callable[[Query], int | None] | None = None) -> Iterator[list[dict[str, Any]]]:
    """Every voucher of these purchases, page by page (the counter check's re-read after a load)."""
    queries = (Query.of("vouchers", purchaseCode=code) for code in codes)
    yield from read_all(client, queries, VoucherSplit((), {}), workers=workers, expected=expected)
