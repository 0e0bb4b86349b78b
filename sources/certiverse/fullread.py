"""The full read of vouchers, checking its estimates against what it spends: never more than the naive plan.

Words as defined in ``planning.py`` and ``facts.py`` (whole side, part, read by exam
or by purchase, completion pass).

The plan (``plans.py``) chooses per program from estimates, and estimates can be
wrong: a first-run sample of a dozen purchases can say the opposite of the truth,
an exam slice spread unevenly can be over the cap. Reading a program by exam is a
bet: if its purchases turn out short, the completion pass reads them anyway and
the exam slices were spent for nothing. So the read keeps a ledger (``ledger.py``)
of the requests it spends, per program, and:

* **bets only what it has in hand.** The budget is what the naive plan would pay
  (``plans.naive_requests``). Before programs are read by exam, the read sets aside
  what everything still unread would cost by purchase (the fallback, which never
  costs more than the naive plan's reads of the same purchases) and admits programs
  by exam only while their exam slices at worst fit in what is left. Programs go in
  **waves**: what the first wave saves pays for the bets of the next.
* **switches as soon as an estimate is exceeded.** A program whose requests pass
  its estimate, or whose exam slice the API refuses (over the cap), stops reading
  by exam: its slices not yet sent are dropped, and its purchases that came back
  short are read by purchase.
* **learns as it reads.** After each wave, the purchases of the programs read by
  exam tell how often a purchase came back short, by stratum; the programs still
  waiting are chosen again with those rates.

Every wave ends with its completion pass; a purchase still short after its part was
read is read whole; one still short after that holds what the API has. This module
plans and samples; ``waves.py`` reads the waves.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Generator

from .catalog import Catalog
from .facts import (
    BOTH_SIDES,
    Stratum,
    VoucherFacts,
    naive_requests,
    over_cap_slices,
    part,
    part_pages,
    voucher_facts,
    whole_sides,
)
from .ledger import CountingClient, Ledger
from .plans import ProgramPlan, VoucherSplit, expected_records, full_read_estimate, program_plans
from .rates import SAMPLE_FIRST, SAMPLE_MAX, LinkRates, PurchaseSeen, sample_order
from .reader import read_all
from .values import flag
from .waves import Pages, Progress, Waves, units_of

log = logging.getLogger(__name__)


@dataclass
class FullRead:
    """Reads every voucher once, page by page; ``counts`` says what it did once it is done."""

    catalog: Catalog
    page: int  # records per page (as learnt from the API, or a guess): for estimates only
    known_unlinked: frozenset[str] | None = None  # purchases holding unlinked vouchers, per the warehouse
    counts: dict[str, Any] = field(default_factory=dict)

    def pages(self, workers: int) -> Pages:
        cap, page = self.catalog.record_cap, self.page
        facts = voucher_facts(self.catalog.programs(), self.catalog.purchases())
        over = over_cap_slices(facts, cap)
        sides = whole_sides(facts, over, page)
        ledger = Ledger()
        client = CountingClient(self.catalog.client, ledger, partial(units_of, facts))
        progress = Progress(facts, BOTH_SIDES - sides)
        naive = naive_requests(facts, len(self.catalog.partners()), len(self.catalog.programs()), page)
        budget = naive - self.catalog.requests  # what the naive plan pays, less what the lists cost us
        if self.known_unlinked is not None or not over:
            rates = LinkRates(known=self.known_unlinked)
        else:
            rates = yield from self._sample(facts, over, progress, client, workers)
        sampled = len(progress.sides_read)
        plans = program_plans(facts, rates, over, page, cap, progress.done(), sides)
        plan, every_purchase = full_read_estimate(facts, rates, over, page, cap, sides, progress.done())
        if plan >= every_purchase:
            log.info("vouchers: slices (~%d requests) cost no less than every purchase whole (~%d)", plan,
                     every_purchase)
            sides = frozenset()
            progress.own = BOTH_SIDES
            plans = {p: ProgramPlan(frozenset(), c.by_purchase, c.by_purchase, 0) for p, c in plans.items()}
        waves = Waves(facts, over, sides, cap, page, plans, rates, progress, ledger, budget)
        yield from waves.run(client, workers)
        for unit, n in sorted(ledger.by_unit().items()):
            plan_ = waves.plans.get(unit)
            log.debug("vouchers: %r spent %.0f; by purchase ~%s; %s", unit, n, plan_ and plan_.by_purchase,
                      "by purchase" if unit in waves.by_purchase else plan_ and sorted(plan_.exam_sides))
        self.counts = {"programs_read_by_purchase": len(waves.by_purchase), "programs_switched": len(waves.switched),
                       "purchases_sampled": sampled, "purchases_read_whole": len(progress.sides_read),
                       "purchases_completed": waves.completed, "waves": waves.number,
                       "vouchers_read": len(progress.seen), "requests": round(ledger.spent()) + self.catalog.requests,
                       "naive_requests": naive}
        log.info("vouchers: %d requests against %d for the naive plan (%d waves, %d programs read by purchase, "
                 "%d switched)", self.counts["requests"], naive, waves.number, len(waves.by_purchase),
                 len(waves.switched))

    def _sample(self, facts: VoucherFacts, over: frozenset[bool], progress: Progress, client: Any,
                workers: int) -> Generator[list[dict[str, Any]], None, LinkRates]:
        """Read a few purchases of each stratum (on every side no whole side holds); returns what they say."""
        strata: dict[Stratum, list[str]] = defaultdict(list)
        for codes in facts.purchases_by_program.values():
            for code in codes:
                if part(facts, code, progress.own) is not None:
                    strata[facts.stratum(code)].append(code)
        order = {s: sample_order(codes) for s, codes in strata.items()}
        hits: Counter[Stratum] = Counter()
        taken: Counter[Stratum] = Counter()
        seen: list[PurchaseSeen] = []
        for first, last in ((0, SAMPLE_FIRST), (SAMPLE_FIRST, SAMPLE_MAX)):
            batch = [c for s, codes in order.items() if first == 0 or 0 < hits[s] < taken[s]
                     for c in codes[first:last]]
            unlinked: Counter[tuple[str, bool]] = Counter()
            queries = [progress.read(c, progress.own) for c in batch]
            for page in progress.take(read_all(client, queries, VoucherSplit((), {}), workers=workers,
                                               seen=progress.seen,
                                               expected=partial(expected_records, facts, cap=self.catalog.record_cap))):
                # Booleans read by meaning (a value with no reading stops the run where it is stored).
                sides = [(v, bool(flag(v.get("isUsed"))), bool(flag(v.get("isActive")))) for v in page]
                unlinked.update((v.get("voucherPurchaseCode"), used) for v, used, active in sides
                                if active and not v.get("storeExamCode"))
                progress.looked.update(used for _, used, _ in sides)
                progress.deactivated.update(used for _, used, active in sides if not active)
                yield page
            for code in batch:
                held = any(unlinked[(code, flag)] for flag in over)
                taken[facts.stratum(code)] += 1
                hits[facts.stratum(code)] += held
                seen.append(PurchaseSeen(code, part_pages(facts, code, progress.own, self.page), held,
                                         {f: progress.per_side[(code, f)] for f in over},
                                         {f: unlinked[(code, f)] for f in over}))
        log.info("vouchers: purchases holding unlinked vouchers, by stratum (several exams, vouchers left): %s",
                 {s: f"{hits[s]}/{taken[s]}" for s in taken})
        return LinkRates().observed(facts, seen)
