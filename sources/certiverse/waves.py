"""The full read after its plan: waves of programs read by exam, paid for by what earlier waves saved.

Words as defined in ``facts.py`` (side, whole side, part) and ``fullread.py`` (the
budget, bets, waves). ``Progress`` is what the read has seen so far; ``Waves`` runs
the waves: admits programs by exam while their worst case fits in the budget left,
drops the exam slices of a program that switched to reading by purchase, learns from
each wave, and queues the completion passes and the parts read by purchase.
"""

from __future__ import annotations

import logging
from collections import Counter
from functools import partial
from typing import Any, Generator, Iterable, Iterator

from .client import Query
from .facts import BOTH_SIDES, VoucherFacts, pages, part, part_pages
from .ledger import SHARED, Ledger
from .plans import ProgramPlan, VoucherSplit, expected_records, program_plans, purchases_to_complete, voucher_split
from .rates import LinkRates, PurchaseSeen
from .reader import ReadSummary, SeenIds, read_all
from .values import flag

log = logging.getLogger(__name__)

Pages = Iterator[list[dict[str, Any]]]


def units_of(facts: VoucherFacts, query: Query) -> tuple[str, ...]:
    """The programs a voucher query serves (its purchase's, its exam's), else ``SHARED``."""
    params = query.params
    if "purchaseCode" in params:
        return (facts.program_of(params["purchaseCode"]),)
    if "storeExamCode" in params:
        return tuple(sorted(facts.programs_by_exam.get(params["storeExamCode"], ()))) or (SHARED,)
    return (SHARED,)


def exam_slices(facts: VoucherFacts, program: str, flags: Iterable[bool]) -> list[Query]:
    """A program's active exam slices on these sides."""
    return [Query.of("vouchers", isUsed=flag, isActive=True, storeExamCode=e)
            for flag in sorted(flags, reverse=True) for e in facts.exams_by_program.get(program, ())]


class Progress:
    """What the read has seen: voucher ids (once each), vouchers per purchase, and on which ``isUsed`` sides
    each purchase was read on its own (``sides_read``; both: whole)."""

    def __init__(self, facts: VoucherFacts, own: frozenset[bool]) -> None:
        self.facts, self.own = facts, own
        self.seen = SeenIds()
        self.per_purchase: Counter[str] = Counter()
        self.per_side: Counter[tuple[str, bool]] = Counter()
        self.sides_read: dict[str, frozenset[bool]] = {}
        # Vouchers of the purchases sampled, per side, and the deactivated ones among them.
        self.looked: Counter[bool] = Counter()
        self.deactivated: Counter[bool] = Counter()

    def take(self, pages_: Generator[list[dict[str, Any]], None, ReadSummary]
             ) -> Generator[list[dict[str, Any]], None, ReadSummary]:
        """Pass pages on, counting vouchers per purchase; returns the reader's summary."""
        while True:
            try:
                page = next(pages_)
            except StopIteration as done:
                return done.value
            self.per_purchase.update(v.get("voucherPurchaseCode") for v in page)
            self.per_side.update((v.get("voucherPurchaseCode"), bool(flag(v.get("isUsed")))) for v in page)
            yield page

    def done(self) -> frozenset[str]:
        """Purchases read on their own on every side no whole side holds."""
        return frozenset(c for c, read in self.sides_read.items() if self.own <= read)

    def short(self, codes: Iterable[str]) -> list[str]:
        """Those of ``codes`` whose vouchers seen fall short, and that were not read whole yet."""
        wanted = set(codes)
        return [c for c in purchases_to_complete(self.facts, self.per_purchase, ())
                if c in wanted and self.sides_read.get(c) != BOTH_SIDES]

    def read(self, code: str, sides: frozenset[bool]) -> Query | None:
        """The query reading a purchase on these sides, noted as read; the purchase whole where a side was read
        before (or its counters say the side is empty: it came back short); None where it was read whole."""
        before = self.sides_read.get(code, frozenset())
        if before == BOTH_SIDES:
            return None
        query = part(self.facts, code, sides) if sides and not sides & before else None
        if query is None:
            sides, query = BOTH_SIDES, Query.of("vouchers", purchaseCode=code)
        self.sides_read[code] = before | (BOTH_SIDES if len(query.params) == 1 else sides)
        return query


class Waves:
    """The read after the plan: waves of programs read by exam, paid for by what earlier waves saved."""

    def __init__(self, facts: VoucherFacts, over: frozenset[bool], sides: frozenset[bool], cap: int, page: int,
                 plans: dict[str, ProgramPlan], rates: LinkRates, progress: Progress, ledger: Ledger,
                 budget: int) -> None:
        self.facts, self.over, self.sides, self.cap, self.page = facts, over, sides, cap, page
        self.plans, self.rates, self.progress, self.ledger, self.budget = plans, rates, progress, ledger, budget
        self.readable = [c for codes in facts.purchases_by_program.values() for c in codes]
        self.by_purchase = {p for p, plan in plans.items() if not plan.exam_sides}
        self.pending = self._order(p for p in plans if p not in self.by_purchase)  # to read by exam
        self.switched: set[str] = set()
        self.sliced: set[str] = set()  # programs whose exam slices were read (some maybe cut short)
        self.slices_read: set[Query] = set()
        self.inactive_planned: set[bool] = set()  # over-cap sides whose deactivated vouchers are to be read
        self.inactive_read: set[bool] = set()  # ... and were asked for
        self.parts_queued: set[str] = set()  # programs whose purchases' parts were queued
        self.completed = 0
        self.number = 0

    def _order(self, programs: Iterable[str]) -> list[str]:
        """The best bets first: the most saving expected for what they risk."""
        def gain(program: str) -> float:
            plan = self.plans[program]
            return (plan.by_purchase - plan.cost) / max(1, plan.slices)
        return sorted(programs, key=lambda p: (-gain(p), p))

    def run(self, client: Any, workers: int) -> Pages:
        """Read wave after wave until every purchase is read or came back complete."""
        # With bets to make, the programs read by purchase wait for what the first wave teaches.
        queue = [Query.of("vouchers", isUsed=flag) for flag in sorted(self.sides, reverse=True)]
        queue += [] if self.pending else self._parts(self.by_purchase)
        while True:
            expected = partial(expected_records, self.facts, rates=self.rates, cap=self.cap)
            admitted = self._admit(self._queued_cost(queue))
            slices = [q for p in admitted for q in exam_slices(self.facts, p, self.plans[p].exam_sides)
                      if q not in self.slices_read]
            # The deactivated side of each side read by exam, with the first program read by exam there.
            slices += [Query.of("vouchers", isUsed=flag, isActive=False)
                       for flag in sorted(self.inactive_planned - self.inactive_read, reverse=True)]
            self.inactive_read |= self.inactive_planned
            queries = list(dict.fromkeys(queue + self._parts(admitted) + slices))
            if not queries:
                if self.pending:  # no bet left to make room for them: by purchase
                    log.info("vouchers: no room in the budget to read %d programs by exam: reading them by purchase",
                             len(self.pending))
                    self.by_purchase.update(self.pending)
                    self.pending = []
                if self.by_purchase - self.parts_queued:
                    queue = self._parts(self.by_purchase - self.parts_queued)
                    continue
                queue = self._completion(self.readable) + self._strays()  # the last pass, over every purchase
                if not queue:
                    return
                continue
            self.number += 1
            self.slices_read.update(slices)
            split = self._split(voucher_split(self.facts, frozenset(self.by_purchase | self.switched), frozenset()))
            roots = (q for q in queries if not self._dropped(q))
            summary = yield from self.progress.take(read_all(client, roots, split, workers=workers,
                                                             seen=self.progress.seen, expected=expected))
            log.info("vouchers: wave %d: %d queries answered, %d refused; %d programs by exam, %.0f requests so far "
                     "of a budget of %d", self.number, summary.answered, summary.refused, len(admitted),
                     self.ledger.spent(), self.budget)
            self.sliced.update(admitted)
            queue = self._after(admitted)

    def _reads_by_purchase(self, program: str) -> frozenset[bool]:
        """The sides a program reads purchase by purchase."""
        exam_sides = frozenset() if program in self.by_purchase else self.plans[program].exam_sides
        return self.progress.own - exam_sides

    def _parts(self, programs: Iterable[str]) -> list[Query]:
        """The parts of these programs' purchases read by purchase, for purchases not read on those sides yet."""
        queries = []
        for program in sorted(programs):
            self.parts_queued.add(program)
            want = self._reads_by_purchase(program)
            for code in self.facts.purchases_by_program.get(program, ()):
                before = self.progress.sides_read.get(code, frozenset())
                if want and not want <= before and part(self.facts, code, want) is not None:
                    queries.append(self.progress.read(code, want - before))
        return [q for q in queries if q is not None]

    def _queued_cost(self, queue: list[Query]) -> int:
        return sum(pages(expected_records(self.facts, q) or 0, self.page) for q in queue)

    def _admit(self, queued: int) -> list[str]:
        """Programs to read by exam in this wave: the bets whose worst case fits in the budget left once
        everything unread is set aside at its cost by purchase (and the wave's other queries at theirs)."""
        unread = sum(part_pages(self.facts, c, self.progress.own, self.page) for c in self.readable
                     if c not in self.progress.sides_read and self.facts.program_of(c) not in self.sliced)
        room = self.budget - self.ledger.spent() - queued - unread
        admitted = []
        for program in list(self.pending):
            new_sides = self.plans[program].exam_sides - self.inactive_planned
            worst = self.plans[program].slices + sum(self._deactivated_pages(f) for f in new_sides)
            if worst > room:
                continue
            room -= worst
            self.inactive_planned |= new_sides
            log.debug("vouchers: by exam %r on sides %s: ~%.0f requests, %d at worst beyond by purchase (~%d); "
                      "room left %d", program, sorted(self.plans[program].exam_sides), self.plans[program].cost,
                      self.plans[program].slices, self.plans[program].by_purchase, room)
            admitted.append(program)
            self.pending.remove(program)
        return admitted

    def _deactivated_pages(self, used: bool) -> int:
        """The deactivated side of an ``isUsed`` side, estimated from the sample's share (none seen: a page)."""
        total = sum((self.facts.used if used else self.facts.unused).values())
        looked = self.progress.looked[used]
        return pages(total * self.progress.deactivated[used] / looked if looked else 0, self.page)

    def _dropped(self, query: Query) -> bool:
        """An exam slice of programs that switched to reading by purchase (or that overran their estimate)."""
        if "storeExamCode" not in query.params or "purchaseCode" in query.params:
            return False
        programs = self.facts.programs_by_exam.get(query.params["storeExamCode"], frozenset())
        for program in programs - self.switched - self.by_purchase:
            if self.ledger.spent(program) > self.plans[program].cost:
                log.info("vouchers: program %r spent %.0f requests, more than its estimate (%.0f): reading the rest "
                         "of it by purchase", program, self.ledger.spent(program), self.plans[program].cost)
                self.switched.add(program)
        return bool(programs) and programs <= self.switched | self.by_purchase

    def _split(self, base: VoucherSplit) -> Any:
        """The plan's split, but an exam slice over the cap switches its programs to reading by purchase."""

        def split(query: Query) -> list[Query] | None:
            params = query.params
            if "storeExamCode" in params and "purchaseCode" not in params and {"isUsed", "isActive"} <= set(params):
                programs = self.facts.programs_by_exam.get(params["storeExamCode"], frozenset())
                log.info("vouchers: %s is over the cap: reading %s by purchase", query.describe(), sorted(programs))
                self.switched.update(programs - self.by_purchase)
                return []
            return base(query)

        return split

    def _after(self, admitted: list[str]) -> list[Query]:
        """After a wave: learn from the programs read by exam, choose again for the programs not read yet, and
        queue the completion of this wave's programs and the parts of those read by purchase."""
        clean = [p for p in admitted if p not in self.switched]
        for program in admitted:
            log.debug("vouchers: %r spent %.0f requests (estimate %.0f)", program, self.ledger.spent(program),
                      self.plans[program].cost)
        done = self.progress.done()
        codes = [c for p in clean for c in self.facts.purchases_by_program.get(p, ()) if c not in done]
        short = set(self.progress.short(codes))
        seen = []
        for code in codes:
            exam_sides = self.plans[self.facts.program_of(code)].exam_sides
            missing = {f: max(0, self.facts.side(code, f) - self.progress.per_side[(code, f)]) for f in exam_sides}
            seen.append(PurchaseSeen(code, part_pages(self.facts, code, exam_sides, self.page), code in short,
                                     {f: self.facts.side(code, f) for f in exam_sides}, missing))
        self.rates = self.rates.observed(self.facts, seen)
        unread = set(self.pending) | (self.by_purchase - self.parts_queued)
        if unread:
            self.plans.update({p: plan for p, plan in program_plans(self.facts, self.rates, self.over, self.page,
                                                                    self.cap, done, self.sides).items()
                               if p in unread})
            by_exam = {p for p in unread if self.plans[p].exam_sides}
            log.info("vouchers: after %d purchases read by exam (%d short), %d programs to read by exam, %d by "
                     "purchase", len(seen), sum(s.held for s in seen), len(by_exam), len(unread - by_exam))
            self.by_purchase = (self.by_purchase - by_exam) | (unread - by_exam)
            self.pending = self._order(by_exam)
        completion = self._completion(c for p in admitted for c in self.facts.purchases_by_program.get(p, ()))
        # Programs read by purchase wait while bets are still to be made: what those teach may change them.
        return completion + ([] if self.pending else self._parts(self.by_purchase - self.parts_queued))

    def _strays(self) -> list[Query]:
        """Purchases the listing did not return but vouchers read name: read whole (their vouchers may be where
        no slice read reaches), and said in the log."""
        strays = sorted(c for c in self.progress.per_purchase if c and c not in self.facts.purchases
                        and c not in self.progress.sides_read)
        if strays:
            log.warning("vouchers: %d purchases the purchase listing did not return hold vouchers (%s); reading them "
                        "whole", len(strays), ", ".join(strays[:5]) + (" ..." if len(strays) > 5 else ""))
        for code in strays:
            self.progress.sides_read[code] = BOTH_SIDES
        return [Query.of("vouchers", purchaseCode=c) for c in strays]

    def _completion(self, codes: Iterable[str]) -> list[Query]:
        """Short purchases, read on the sides their program read by exam (all its sides if it switched)."""
        queries = []
        for code in self.progress.short(codes):
            program = self.facts.program_of(code)
            exam_sides = self.plans[program].exam_sides if program in self.plans else frozenset()
            want = self.progress.own if program in self.switched or program in self.by_purchase else exam_sides
            query = self.progress.read(code, want - self.progress.sides_read.get(code, frozenset()))
            if query is not None:
                queries.append(query)
        self.completed += len(queries)
        return queries
