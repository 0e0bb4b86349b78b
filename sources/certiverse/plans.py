"""Planning the full read of vouchers: which queries cover every voucher, with as few requests as the API allows.

Words as defined in ``planning.py`` (open, settled, linked, read by purchase) and
``facts.py`` (side, whole side, part).

Every voucher is on one side. A side under the cap is read whole when that costs
less than what it spares (``facts.whole_sides``). A side over the cap splits by
``isActive`` (still covering): its deactivated vouchers are one query, its active
ones are read per program and side, whichever is estimated cheaper:

* **by purchase**: each purchase's vouchers on that side (the purchase whole when
  both sides are read by purchase);
* **by exam**: the program's exam slices on that side, then a completion pass for
  its purchases that came back short (exam slices miss unlinked vouchers).

    by purchase = sum of pages(part) over its purchases
    by exam     = its exam slices (its counters, less what the rates say is unlinked, spread evenly
                  over its exams) + pages(part) of each purchase likely to hold unlinked vouchers

The rates (``rates.py``) come from the warehouse on later runs, else from a sample
and what the read learns as it goes. The planning steps: ``facts.voucher_facts`` →
``facts.over_cap_slices`` → ``facts.whole_sides`` → ``rates.LinkRates`` →
``program_plans``; ``fullread.py`` runs them and checks the estimates against what
the read spends. The nightly plan chooses with ``choose_programs_read_by_purchase``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from .catalog import expected_vouchers
from .client import Query
from .facts import BOTH_SIDES, VoucherFacts, pages, part_pages
from .rates import LinkRates
from .reader import read_all

log = logging.getLogger(__name__)


def _exam_slices(facts: VoucherFacts, program: str, flag: bool, page: int, cap: int,
                 rates: LinkRates | None = None) -> float:
    """Requests for a program's exam slices on one side: its vouchers there, less those ``rates`` say are not
    linked, spread evenly over its exams (infinite where that is still over the cap, or where it sells no
    exam we know)."""
    exams = facts.exams_by_program.get(program)
    n: float = facts.used[program] if flag else facts.unused[program]
    if rates is not None:
        n -= sum(facts.side(c, flag) * rates.unlinked_share(facts, c, flag)
                 for c in facts.purchases_by_program.get(program, ()))
    if not exams or n > cap * len(exams):
        return math.inf
    return len(exams) * pages(n / len(exams), page)


def _worst_slices(facts: VoucherFacts, program: str, flags: Iterable[bool], page: int, cap: int) -> int:
    """What a program's exam slices on these sides cost at worst: every voucher of the programs selling its
    exams, each slice up to the cap (a refusal costs one request) and a last page part full."""
    exams = facts.exams_by_program.get(program, ())
    sharing = {q for e in exams for q in facts.programs_by_exam[e]}
    return sum(math.ceil(min(sum((facts.used if f else facts.unused)[q] for q in sharing), cap * len(exams)) / page)
               + len(exams) for f in flags)


def choose_programs_read_by_purchase(facts: VoucherFacts, rates: LinkRates, over: frozenset[bool], page: int,
                                     cap: int, already_whole: frozenset[str] = frozenset()) -> frozenset[str]:
    """The programs cheaper to read purchase by purchase (each purchase whole) than by exam slices in every
    over-cap side and a completion pass: the choice of the nightly plan, whose rolling re-check reads a
    purchase whole. (The full read chooses per side: ``program_plans``.)

    Also every program whose slices would exceed the cap even spread evenly over its exams, and
    purchases of programs the program list does not know (no exam slice is sure to reach them).
    """
    chosen = set()
    for program, codes in facts.purchases_by_program.items():
        exams = facts.exams_by_program.get(program)
        if not over or exams is None:
            if exams is None:
                chosen.add(program)
            continue
        rest = [c for c in codes if c not in already_whole]
        whole = sum(pages(facts.quantity(c), page) for c in rest)
        by_exam = sum(_exam_slices(facts, program, flag, page, cap) for flag in over)
        by_exam += sum(rates.likelihood(facts, c) * pages(facts.quantity(c), page) for c in rest)
        if whole <= by_exam:
            chosen.add(program)
    return frozenset(chosen)


@dataclass(frozen=True)
class ProgramPlan:
    """How the full read reads one program: by exam slices on ``exam_sides``, by purchase on the other sides
    that are not read whole; the estimates behind the choice."""

    exam_sides: frozenset[bool]
    cost: float  # requests estimated this way
    by_purchase: int  # requests estimated reading it all by purchase
    slices: int  # its exam slices at worst: what this way can cost beyond reading by purchase


def program_plans(facts: VoucherFacts, rates: LinkRates, over: frozenset[bool], page: int, cap: int,
                  done: frozenset[str] = frozenset(), sides: frozenset[bool] = frozenset()) -> dict[str, ProgramPlan]:
    """Per program, the cheapest way by the estimates (``done``: purchases already read, left out; ``sides``:
    the whole sides).

    Each over-cap side is read by exam (its exam slices, then the side of each purchase likely to hold
    unlinked vouchers) or by purchase (the side of each purchase that has vouchers there); a purchase
    read by purchase on both sides is read whole, once. Ties go to reading by purchase.
    """
    plans = {}
    own = BOTH_SIDES - sides  # the sides a program reads itself
    for program, codes in facts.purchases_by_program.items():
        rest = [c for c in codes if c not in done]
        options = [frozenset()] + [frozenset(e) for e in ({True}, {False}, {True, False}) if set(e) <= over & own]
        # each estimate once per program, not once per option: this runs after every wave, over every
        # purchase, and was a sixth of a large tenant's CPU
        slices = {flag: _exam_slices(facts, program, flag, page, cap, rates) for flag in over & own}
        likelihood = {c: rates.likelihood(facts, c) for c in rest} if len(options) > 1 else {}
        best: ProgramPlan | None = None
        for exam_sides in options:
            cost = sum(slices[flag] for flag in exam_sides)
            if cost == math.inf:
                continue
            cost += sum(part_pages(facts, c, own - exam_sides, page)
                        + likelihood.get(c, 0.0) * part_pages(facts, c, exam_sides, page) for c in rest)
            if best is None or cost < best.cost:
                # At worst every purchase comes back short: its sides read apart cost their rounding beyond
                # reading it by purchase at once.
                split = sum(part_pages(facts, c, own - exam_sides, page) + part_pages(facts, c, exam_sides, page)
                            - part_pages(facts, c, own, page) for c in rest) if exam_sides else 0
                best = ProgramPlan(exam_sides, cost, 0, _worst_slices(facts, program, exam_sides, page, cap) + split)
        assert best is not None  # reading by purchase is always an option
        by_purchase = sum(part_pages(facts, c, own, page) for c in rest)
        plans[program] = ProgramPlan(best.exam_sides, best.cost, by_purchase, best.slices)
    return plans


def full_read_estimate(facts: VoucherFacts, rates: LinkRates, over: frozenset[bool], page: int, cap: int,
                       sides: frozenset[bool], done: frozenset[str] = frozenset()) -> tuple[int, int]:
    """(the full read's plan, every purchase whole): requests estimated for the vouchers.

    The plan: its whole sides, the deactivated side of each over-cap side some program reads by exam
    (one request each), and each program its cheapest way.
    """
    every_purchase = sum(pages(facts.quantity(c), page) for codes in facts.purchases_by_program.values()
                         for c in codes)
    plans = program_plans(facts, rates, over, page, cap, done, sides)
    plan = sum(pages(sum((facts.used if flag else facts.unused).values()), page) for flag in sides)
    plan += len({flag for p in plans.values() for flag in p.exam_sides})
    return plan + round(sum(p.cost for p in plans.values())), every_purchase


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


def expected_records(facts: VoucherFacts, query: Query, rates: LinkRates | None = None,
                     cap: int | None = None) -> int | None:
    """Records a voucher query should return by the purchases' counters; None where they do not say.

    Only for reading a long query's pages side by side (``read_all``): a guess too high costs a
    request per empty page, too low only time. The counters say nothing of deactivated vouchers
    (an ``isActive=true`` side is guessed at its whole ``isUsed`` side, ``isActive=false`` not at
    all) nor of how a program's vouchers spread over its exams (only exams of single-exam programs
    are guessed at, less the vouchers ``rates`` say are not linked). No guess passes the ``cap``: a
    query over it is refused.
    """
    guess = _counted_records(facts, query, rates)
    return guess if guess is None or cap is None else min(guess, cap)


def _counted_records(facts: VoucherFacts, query: Query, rates: LinkRates | None) -> int | None:
    params = query.params
    if (query.endpoint != "vouchers" or params.get("isActive") == "false"
            or set(params) - {"isUsed", "isActive", "purchaseCode", "storeExamCode"}):
        return None
    if "purchaseCode" in params:
        purchase = facts.purchases.get(params["purchaseCode"])
        if purchase is None or "storeExamCode" in params or expected_vouchers(purchase) is None:
            return None  # a status that does not say (in voucher creation: fewer vouchers than its counters)
        used, unused = int(purchase.get("quantityUsed") or 0), int(purchase.get("quantityRemaining") or 0)
    elif "storeExamCode" in params:
        programs = facts.programs_by_exam.get(params["storeExamCode"], frozenset())
        if not programs or any(len(facts.exams_by_program.get(p, ())) != 1 for p in programs):
            return None
        used, unused = sum(facts.used[p] for p in programs), sum(facts.unused[p] for p in programs)
        if rates is not None:
            codes = [c for p in programs for c in facts.purchases_by_program.get(p, ())]
            used -= round(sum(facts.side(c, True) * rates.unlinked_share(facts, c, True, strict=True) for c in codes))
            unused -= round(sum(facts.side(c, False) * rates.unlinked_share(facts, c, False, strict=True)
                                for c in codes))
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


def read_purchases_whole(client: Any, codes: Iterable[str], workers: int,
                         expected: Callable[[Query], int | None] | None = None) -> Iterator[list[dict[str, Any]]]:
    """Every voucher of these purchases, page by page (the counter check's re-read after a load)."""
    queries = (Query.of("vouchers", purchaseCode=code) for code in codes)
    yield from read_all(client, queries, VoucherSplit((), {}), workers=workers, expected=expected)
