"""What the catalog says about where vouchers are, before any voucher is read.

Words as defined in ``planning.py`` (open, settled, linked, read by purchase), and:

* **side**: one ``isUsed`` value; every voucher is on exactly one side.
* **whole side**: a side under the cap read in one query (``isUsed=…``).
* **part**: what of a purchase is read on its own, on the sides no whole side holds:
  the purchase whole (``purchaseCode=P``), one side of it (``purchaseCode=P&isUsed=…``),
  or nothing (its counters put every voucher in whole sides).
* **stratum** / **cell**: purchases grouped by whether their program sells several
  exams and whether they have vouchers left; a cell also by whether they are bulk
  purchases (``BULK`` vouchers or more). What is learnt about unlinked vouchers is
  learnt per cell (``rates.py``).

``naive_requests`` is what the naive plan pays for a full read of the same catalog.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

from .catalog import expected_vouchers
from .client import Query

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
