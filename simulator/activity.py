"""One simulated day of tenant activity (``Tenant.advance_day``).

Each voucher changes in at most one way per day (the ``touched`` set), so the
counts returned equal what a before/after diff of the records shows.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import history
from .model import (
    ACTIVE,
    DAY,
    MAX_RESERVATIONS,
    RES_CANCELLED,
    RES_COMPLETED,
    RES_SCHEDULED,
    USED,
)

if TYPE_CHECKING:
    from .data import Tenant

COUNT_KEYS = (
    "purchases_created",
    "purchases_completed",
    "purchases_abandoned",
    "vouchers_created",
    "vouchers_assigned",
    "vouchers_reserved",
    "reservations_cancelled",
    "vouchers_used",
    "vouchers_deactivated",
    "vouchers_reactivated",
    "vouchers_extended",
    "vouchers_extended_settled",
    "purchase_counters_updated",
)
ABANDONED = ("CheckoutCancelled", "CheckoutExpired", "CheckoutFailed")


class Day:
    """State of the day being played."""

    def __init__(self, t: Tenant, rng: random.Random) -> None:
        self.t, self.rng = t, rng
        self.start = t.now_ts() - DAY + 1
        self.touched: set[int] = set()
        self.counts: Counter[str] = Counter({k: 0 for k in COUNT_KEYS})
        flow = len(t.vouchers) / t.shape.history_days  # vouchers issued per day, on average
        self.flow = flow * rng.uniform(0.7, 1.3)

    def moment(self) -> int:
        """A time during business hours of the day."""
        return self.start + self.rng.randrange(6 * 3600, 22 * 3600)

    def amount(self, share: float, minimum: int) -> int:
        return max(minimum, round(self.flow * share))


def play_day(t: Tenant, rng: random.Random) -> dict[str, int]:
    """Apply one day of activity to ``t`` (clock already moved)."""
    day = Day(t, rng)
    _resolve_pending(day)
    _new_purchases(day)
    _assign(day)
    _reserve(day)
    _use(day)
    _cancel(day)
    _deactivate(day)
    _reactivate(day)
    _extend(day)
    return dict(day.counts)


def _resolve_pending(day: Day) -> None:
    t, rng = day.t, day.rng
    for i in sorted(day.t.pending):
        pu = t.purchases[i]
        prog = t.programs[pu.program]
        if pu.status == "CheckoutInProgress" and rng.random() < 0.25:
            pu.status = rng.choice(ABANDONED)
            day.counts["purchases_abandoned"] += 1
        else:
            if pu.status == "CheckoutInProgress":
                pu.amount = round(pu.quantity * prog.unit_price(pu.quantity), 2)
            missing = pu.quantity - pu.voucher_count()
            start = len(t.vouchers)
            history.issue_fresh(t, pu, missing, day.moment())
            day.touched.update(range(start, len(t.vouchers)))
            pu.status = "Complete"
            day.counts["purchases_completed"] += 1
            day.counts["vouchers_created"] += missing
    t.pending.clear()


def _new_purchases(day: Day) -> None:
    t, rng = day.t, day.rng
    n = max(1, round(len(t.purchases) / t.shape.history_days * 1.5 * rng.uniform(0.5, 1.5)))
    programs = [p for p in t.programs if p.status == "Active"]
    weights = [p.weight for p in programs]
    # creation order follows purchase time, as in the generated history
    for moment in sorted(day.moment() for _ in range(n)):
        prog = rng.choices(programs, weights=weights)[0]
        partners = [p for p in t.partners if p.status == "Active" and (prog.open_to_all or p.idx in prog.assigned)]
        if not partners:
            continue
        partner = rng.choices(partners, weights=[p.weight for p in partners])[0]
        x = rng.random()
        status = ("Complete" if x < 0.8 else "VoucherCreation" if x < 0.88
                  else "CheckoutInProgress" if x < 0.93 else rng.choice(ABANDONED))
        qty = t.shape.quantity(history.quantity(rng, history.big_share(t), t.shape.big_range))
        pu = history.new_purchase(t, partner, prog, moment, *history.purchaser(partner, rng),
                                  history.note(rng), qty, status)
        pu.exam = history.exam_at_issuance(t, prog, rng)
        issued = qty if status == "Complete" else rng.randint(0, qty - 1) if status == "VoucherCreation" else 0
        start = len(t.vouchers)
        history.issue_fresh(t, pu, issued, pu.ts + 60)
        day.touched.update(range(start, len(t.vouchers)))
        day.counts["vouchers_created"] += issued
        day.counts["purchases_created"] += 1
        if status in ("VoucherCreation", "CheckoutInProgress"):
            t.pending.add(pu.idx)


def _pick(day: Day, k: int, ok: Callable[[int], bool], recent: bool = True) -> list[int]:
    """Up to ``k`` distinct vouchers satisfying ``ok``, biased to recent ones."""
    rng, n = day.rng, len(day.t.vouchers)
    found: list[int] = []
    seen: set[int] = set()
    for _ in range(40 * k):
        if len(found) >= k:
            break
        v = n - 1 - int(abs(rng.gauss(0, 0.25 * n))) if recent else rng.randrange(n)
        if v < 0 or v in seen:
            continue
        seen.add(v)
        if ok(v):
            found.append(v)
    if not found:
        # rejection sampling missed (tiny tenant): fall back to a full scan
        candidates = [v for v in range(n) if ok(v)]
        found = rng.sample(candidates, min(k, len(candidates)))
    day.touched.update(found)
    return found


def _from_set(day: Day, pool: set[int], k: int, ok: Callable[[int], bool]) -> list[int]:
    candidates = [v for v in sorted(pool) if v not in day.touched and ok(v)]
    chosen = day.rng.sample(candidates, min(k, len(candidates)))
    day.touched.update(chosen)
    return chosen


def _assign(day: Day) -> None:
    t = day.t
    vs, touched, when = t.vouchers, day.touched, day.start + DAY
    live = ("Complete", "VoucherCreation")

    def ok(v: int) -> bool:
        return (vs.flags[v] == ACTIVE and vs.person[v] < 0 and vs.expires[v] > when and v not in touched
                and t.purchases[vs.purchase[v]].status in live)

    for v in _pick(day, day.amount(0.6, 2), ok):
        prog = t.programs[t.purchases[vs.purchase[v]].program]
        person = t.people.draw(day.rng, prog.domains)
        vs.person[v], vs.assigned[v] = person, day.moment()
        t.note_assignment(v, person)
        day.counts["vouchers_assigned"] += 1


def _link_exam(t: Tenant, rng: random.Random, v: int, event: str) -> None:
    """Link voucher ``v`` to an exam if the shape links vouchers at this event ("reserved" or "used")."""
    vs, link_when = t.vouchers, t.shape.link_when
    if not vs.exam[v] and (link_when == event or link_when == "reserved"):
        exams = t.programs[t.purchases[vs.purchase[v]].program].exams
        vs.exam[v] = rng.choice(exams).gidx + 1


def _reserve(day: Day) -> None:
    vs, touched, when = day.t.vouchers, day.touched, day.start + DAY

    def ok(v: int) -> bool:
        return (vs.flags[v] == ACTIVE and vs.person[v] >= 0 and vs.res_status[v] in (0, RES_CANCELLED)
                and vs.res_attempt[v] < MAX_RESERVATIONS and vs.expires[v] > when and v not in touched)

    for v in _pick(day, day.amount(0.45, 2), ok):
        vs.res_attempt[v] += 1
        vs.res_status[v] = RES_SCHEDULED
        _link_exam(day.t, day.rng, v, "reserved")
        day.t.scheduled.add(v)
        day.counts["vouchers_reserved"] += 1


def _use(day: Day) -> None:
    t, vs = day.t, day.t.vouchers
    when = day.start + DAY
    counters: set[int] = set()
    for v in _from_set(day, t.scheduled, day.amount(0.4, 2),
                       lambda v: vs.flags[v] == ACTIVE and vs.expires[v] > when):
        used_at = day.moment()
        vs.flags[v] = ACTIVE | USED
        vs.used_at[v] = max(used_at, vs.assigned[v] + 1)
        vs.res_status[v] = RES_COMPLETED
        _link_exam(day.t, day.rng, v, "used")
        t.scheduled.discard(v)
        t.purchases[vs.purchase[v]].used_count += 1
        counters.add(vs.purchase[v])
        day.counts["vouchers_used"] += 1
    day.counts["purchase_counters_updated"] = len(counters)


def _cancel(day: Day) -> None:
    t, vs = day.t, day.t.vouchers
    for v in _from_set(day, t.scheduled, day.amount(0.03, 1), lambda v: True):
        vs.res_status[v] = RES_CANCELLED
        t.scheduled.discard(v)
        day.counts["reservations_cancelled"] += 1


def _deactivate(day: Day) -> None:
    t, vs, touched = day.t, day.t.vouchers, day.touched

    def ok(v: int) -> bool:
        return (vs.flags[v] == ACTIVE and vs.res_status[v] != RES_SCHEDULED and v not in touched
                and t.purchases[vs.purchase[v]].status == "Complete")

    for first in _pick(day, day.amount(0.002, 1), ok):
        # partners deactivate in bulk: take a few neighbours of the same purchase
        batch = [first] + [v for v in range(first + 1, min(first + day.rng.randint(1, 5), len(vs)))
                           if vs.purchase[v] == vs.purchase[first] and ok(v)]
        for v in batch:
            vs.flags[v] = 0
            t.deactivated.add(v)
            touched.add(v)
            day.counts["vouchers_deactivated"] += 1


def _reactivate(day: Day) -> None:
    t, vs = day.t, day.t.vouchers
    for v in _from_set(day, t.deactivated, day.amount(0.003, 1), lambda v: True):
        vs.flags[v] = ACTIVE
        t.deactivated.discard(v)
        day.counts["vouchers_reactivated"] += 1


def _extend(day: Day) -> None:
    vs, rng, touched = day.t.vouchers, day.rng, day.touched
    start = day.start

    def live(v: int) -> bool:
        return vs.flags[v] == ACTIVE and vs.expires[v] >= start and v not in touched

    def settled(v: int) -> bool:
        return vs.flags[v] == ACTIVE and vs.expires[v] < start and v not in touched

    for v in _pick(day, day.amount(0.01, 1), live):
        vs.expires[v] += rng.choice((30, 90, 180, 365)) * DAY
        day.counts["vouchers_extended"] += 1
    for v in _pick(day, day.amount(0.01, 1), settled, recent=False):
        vs.expires[v] = day.moment() + rng.choice((30, 90, 180)) * DAY
        day.counts["vouchers_extended"] += 1
        day.counts["vouchers_extended_settled"] += 1


MOMENT_KEYS = ("vouchers_used", "vouchers_reserved", "vouchers_assigned", "vouchers_deactivated")


def play_moment(t: Tenant, rng: random.Random) -> dict[str, int]:
    """A moment of activity while a read is under way, at the simulated now.

    One scheduled reservation is used, one assigned voucher reserved, one voucher
    assigned, and now and then one deactivated; the vouchers are drawn from the
    whole tenant, so they sit both before and behind a reader's current page. The
    caller holds ``t.lock``; ``t.version`` moves so cached query answers are redone.
    """
    vs, now = t.vouchers, t.now_ts()
    counts = Counter({k: 0 for k in MOMENT_KEYS})

    def open_(v: int) -> bool:
        return vs.flags[v] == ACTIVE and vs.expires[v] > now

    scheduled = [v for v in sorted(t.scheduled) if open_(v)]
    if scheduled:
        v = rng.choice(scheduled)
        vs.flags[v], vs.used_at[v], vs.res_status[v] = ACTIVE | USED, max(now, vs.assigned[v] + 1), RES_COMPLETED
        _link_exam(t, rng, v, "used")
        t.scheduled.discard(v)
        t.purchases[vs.purchase[v]].used_count += 1
        counts["vouchers_used"] += 1
    live = ("Complete", "VoucherCreation")
    for kind, ok in (
        ("vouchers_reserved", lambda v: vs.person[v] >= 0 and vs.res_status[v] in (0, RES_CANCELLED)
         and vs.res_attempt[v] < MAX_RESERVATIONS),
        ("vouchers_assigned", lambda v: vs.person[v] < 0 and t.purchases[vs.purchase[v]].status in live),
        ("vouchers_deactivated", lambda v: vs.res_status[v] != RES_SCHEDULED and rng.random() < 0.3
         and t.purchases[vs.purchase[v]].status == "Complete"),
    ):
        v = _draw(rng, len(vs), lambda v: open_(v) and ok(v))
        if v is None:
            continue
        if kind == "vouchers_reserved":
            vs.res_attempt[v] += 1
            vs.res_status[v] = RES_SCHEDULED
            _link_exam(t, rng, v, "reserved")
            t.scheduled.add(v)
        elif kind == "vouchers_assigned":
            person = t.people.draw(rng, t.programs[t.purchases[vs.purchase[v]].program].domains)
            vs.person[v], vs.assigned[v] = person, now
            t.note_assignment(v, person)
        else:
            vs.flags[v] = 0
            t.deactivated.add(v)
        counts[kind] += 1
    t.version += 1
    return dict(counts)


def _draw(rng: random.Random, n: int, ok: Callable[[int], bool], tries: int = 200) -> int | None:
    """A voucher position satisfying ``ok``, drawn uniformly; None if none was found."""
    for _ in range(tries if n else 0):
        v = rng.randrange(n)
        if ok(v):
            return v
    return None
