"""Planning the full read of vouchers: which queries cover every voucher, with as few requests as the API allows.

Words as defined in ``planning.py`` (open, settled, linked, read by purchase).

Every voucher is in exactly one of ``isUsed=true|false``. A side under the cap is
read whole (**a whole side**), when that costs less than what it spares (or some
program is read by exam). A side over the cap splits by ``isActive`` (still
covering): its deactivated vouchers are one query, its active ones are read per
program, whichever is estimated cheaper:

* **by purchase**: each purchase's **part**, what no whole side holds: the purchase
  whole, only its ``isUsed`` side over the cap, or nothing (every voucher in a whole
  side);
* **by exam**: the program's exam slices in each over-cap side, then a completion
  pass for its purchases that came back short (exam slices miss unlinked vouchers).

    by purchase = sum of pages(part) over its purchases
    by exam     = its exam slices in each over-cap side (its counters spread evenly over its exams)
                  + pages(part) of each purchase likely to hold unlinked vouchers

How likely a purchase holds unlinked vouchers is known exactly from the warehouse on
later runs; on a first run it is learnt from a small sample of purchases read whole
(their vouchers are part of the read), by stratum (programs of one exam or several,
purchases with vouchers left or all used), and again from each program read by exam
as the read goes on. If the estimate is not below reading every purchase whole, every
purchase is read whole.

These are the planning steps (``voucher_facts`` → ``over_cap_slices`` →
``whole_sides`` → ``LinkRates`` → ``program_costs`` → ``choose_programs_read_by_purchase``);
``fullread.py`` runs them and checks the estimates against what the read spends.
``naive_requests`` is what the naive plan would pay for the same catalog.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

from .catalog import expected_vouchers
from .client import Query
from .reader import read_all

log = logging.getLogger(__name__)

SAMPLE_FIRST = 4  # purchases per stratum read whole to learn how often they hold unlinked vouchers
SAMPLE_MAX = 12  # ... and up to this many when the first ones disagree
Stratum = tuple[bool, bool]  # (program sells several exams, purchase has vouchers left)
Cell = tuple[bool, bool, bool]  # a stratum, and whether the purchase is a bulk one
BULK = 50  # vouchers from which a purchase is a bulk one (what rates are learnt for apart)
BOTH_SIDES = frozenset({True, False})


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

    def cell(self, code: str) -> Cell:
        return (*self.stratum(code), self.quantity(code) >= BULK)

    def quantity(self, code: str) -> int:
        return int(self.purchases[code].get("quantity") or 0)

    def side(self, code: str, used: bool) -> int:
        """A purchase's vouchers on one ``isUsed`` side, by its counters."""
        return int(self.purchases[code].get("quantityUsed" if used else "quantityRemaining") or 0)

    def program_of(self, code: str) -> str:
        return self.purchases[code].get("programName", "") if code in self.purchases else ""


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


def naive_requests(facts: VoucherFacts, partners: int, programs: int, page: int) -> int:
    """What the naive plan pays for a full read of this catalog (the definition of ``simulator/yardsticks.py``):
    partners and programs, purchases by status, then every purchase's vouchers one purchase at a time.

    A purchase's vouchers are taken at what its status says; where it does not say (a purchase still in
    voucher creation, a status the reference does not list) at one page, the least the naive plan pays:
    the estimate may fall below the truth, never above it.
    """
    statuses = Counter(p.get("status") for p in facts.purchases.values())
    lists = pages(partners, page) + pages(programs, page) + sum(pages(n, page) for n in statuses.values())
    return lists + sum(pages(expected_vouchers(p) or 0, page) for p in facts.purchases.values())


def over_cap_slices(facts: VoucherFacts, cap: int) -> frozenset[bool]:
    """The ``isUsed`` values whose active slice is expected over the cap (from the counters: few vouchers
    are deactivated, so the active slice is taken to hold them all)."""
    totals = {True: sum(facts.used.values()), False: sum(facts.unused.values())}
    return frozenset(flag for flag, n in totals.items() if n > cap)


def part(facts: VoucherFacts, code: str, read_on: frozenset[bool]) -> Query | None:
    """The query reading a purchase on these ``isUsed`` sides: whole for both, one side, or None for none (or
    for a side its counters say is empty)."""
    if read_on == BOTH_SIDES:
        return Query.of("vouchers", purchaseCode=code)
    if not read_on:
        return None
    (flag,) = read_on
    return Query.of("vouchers", purchaseCode=code, isUsed=flag) if facts.side(code, flag) else None


def part_pages(facts: VoucherFacts, code: str, read_on: frozenset[bool], page: int) -> int:
    """Requests for a purchase's part on these sides (none when it has none)."""
    if read_on == BOTH_SIDES:
        return pages(facts.quantity(code), page)
    if not read_on:
        return 0
    (flag,) = read_on
    return pages(facts.side(code, flag), page) if facts.side(code, flag) else 0


def whole_sides(facts: VoucherFacts, over: frozenset[bool], page: int) -> frozenset[bool]:
    """The ``isUsed`` sides under the cap worth reading whole: all of them when no side is over the cap
    (they cover everything); else those that cost less than the purchases' parts they spare."""
    under = BOTH_SIDES - over
    if not over:
        return under
    chosen = set()
    for flag in under:
        total = sum((facts.used if flag else facts.unused).values())
        spared = sum(pages(facts.quantity(c), page) - part_pages(facts, c, BOTH_SIDES - {flag}, page)
                     for codes in facts.purchases_by_program.values() for c in codes)
        if pages(total, page) < spared:
            chosen.add(flag)
    return frozenset(chosen)


class PurchaseSeen(NamedTuple):
    """What one purchase read told about unlinked vouchers."""

    code: str
    pages: int  # what reading it costs: the weight of what it tells
    held: bool  # it held unlinked vouchers (an exam slice would have missed some)
    vouchers: dict[bool, int]  # vouchers looked at, per isUsed side
    unlinked: dict[bool, int]  # ... of them not linked (or missed by the exam slices)


@dataclass(frozen=True)
class LinkRates:
    """What is known of unlinked vouchers: per purchase (the warehouse), or from the purchases seen so far
    (the sample, then each program read by exam), per stratum and, within it, for bulk purchases apart
    (``BULK`` vouchers or more: they are often linked differently, and weigh most in what a read costs).

    ``likelihood`` weighs purchases by their pages: the share of pages in purchases that held unlinked
    vouchers, so that a few large purchases holding them count for what re-reading them costs.
    ``unlinked_share`` is the share of vouchers on one side that are not linked: the exam slices return
    the others, which is what decides whether a slice stays under the cap.
    """

    known: frozenset[str] | None = None  # purchases that hold some (from the warehouse)
    pages: Counter[Cell] = field(default_factory=Counter)
    held: Counter[Cell] = field(default_factory=Counter)
    vouchers: Counter[tuple[Cell, bool]] = field(default_factory=Counter)
    unlinked: Counter[tuple[Cell, bool]] = field(default_factory=Counter)

    def likelihood(self, facts: VoucherFacts, code: str) -> float:
        if self.known is not None:
            return 1.0 if code in self.known else 0.0
        cells = _cells(facts, code, self.pages)
        if not cells:
            return 1.0
        return (sum(self.held[c] for c in cells) + 0.5) / (sum(self.pages[c] for c in cells) + 1)

    def unlinked_share(self, facts: VoucherFacts, code: str, used: bool, strict: bool = False) -> float:
        """``strict``: a purchase whose own cell nothing was seen of counts as all unlinked (for guesses that
        cost a request when too high), not as its stratum's other cells say."""
        if self.known is not None:
            return 0.0
        if strict and not self.vouchers[(facts.cell(code), used)]:
            return 1.0
        cells = _cells(facts, code, Counter({c: n for (c, side), n in self.vouchers.items() if side == used}))
        seen = sum(self.vouchers[(c, used)] for c in cells)
        return sum(self.unlinked[(c, used)] for c in cells) / seen if seen else 0.0

    def observed(self, facts: VoucherFacts, seen: Iterable[PurchaseSeen]) -> LinkRates:
        """These rates with more purchases seen."""
        if self.known is not None:
            return self
        pages_, held = Counter(self.pages), Counter(self.held)
        vouchers, unlinked = Counter(self.vouchers), Counter(self.unlinked)
        for one in seen:
            cell = facts.cell(one.code)
            pages_[cell] += one.pages
            held[cell] += one.pages if one.held else 0
            for used, n in one.vouchers.items():
                vouchers[(cell, used)] += n
                unlinked[(cell, used)] += one.unlinked.get(used, 0)
        return LinkRates(None, pages_, held, vouchers, unlinked)


def _cells(facts: VoucherFacts, code: str, observed: Counter[Cell]) -> list[Cell]:
    """The purchase's own cell if anything was seen there, else its stratum's cells seen (none: nothing)."""
    cell = facts.cell(code)
    if observed[cell]:
        return [cell]
    return [c for c in observed if c[:2] == cell[:2] and observed[c]]


def sample_order(codes: Iterable[str]) -> list[str]:
    """A fixed pseudo-random order (the same every run, unrelated to purchase age or size)."""
    return sorted(codes, key=lambda c: (zlib.crc32(c.encode()), c))


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
        best: ProgramPlan | None = None
        for exam_sides in options:
            cost = sum(_exam_slices(facts, program, flag, page, cap, rates) for flag in exam_sides)
            if cost == math.inf:
                continue
            cost += sum(part_pages(facts, c, own - exam_sides, page)
                        + rates.likelihood(facts, c) * part_pages(facts, c, exam_sides, page) for c in rest)
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
