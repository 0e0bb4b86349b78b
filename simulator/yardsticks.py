"""Request counts of reference plans, computed from a tenant's truth (its records), not by running them.

Three yardsticks for a full read and one for a nightly read; the loader's plans are
measured against them (``benchmarks.grid``, ``benchmarks.requests``, ``tests/test_grid.py``,
and, for the naive plan, the loader itself: ``sources/certiverse/plans.naive_requests``).

**Floor**: every record once, in full pages (partners, programs, purchases, vouchers):
what no plan can beat, and this API does not let a plan reach (no filter but a
purchase's or a voucher's code reaches a voucher without an exam code).

Every count is in requests of ``page`` records (a query with no record still costs
one request), and every plan reads partners and programs whole first.

**Naive full read** (what a first integration does): purchases listed by status,
one query per status the tenant holds (the cap and refused filters ignored, which
only flatters it), then every purchase's vouchers one purchase at a time
(``purchaseCode=P``), empty purchases included.

**Good full read**, a plan that knows every voucher's state, exam and purchase
but must still ask for everything it reads:

* purchases listed per program (per partner inside a program over the cap);
  partial name matches cost nothing extra;
* vouchers: ``isUsed=true|false``; a slice over the cap is split by ``isActive``;
  a boolean slice under the cap is read whole (it reaches every voucher in it);
* inside boolean slices still over the cap ("over-cap slices"), each program
  chooses the cheaper of (A) reading each of its purchases that has vouchers
  there whole, or (B) an ``isUsed×isActive×storeExamCode`` query for each of its
  exams that has vouchers in each over-cap slice, plus a whole read of each
  purchase holding a voucher there that no such query reaches (no exam code, or
  an exam slice itself over the cap);
* not modelled: ``storeExamCode`` alone, recipient or reservation filters, and
  reading one purchase restricted to a boolean slice; they would rarely help.

**Good nightly read** (after a run at ``since``, tonight's rolling night of
``nights``): the lists; new purchases and purchases whose status or quantity moved,
read whole; every voucher open at ``since`` (unused, active, not expired) through
its cheapest covering query (its exam's ``isUsed=false&isActive=true`` slice or
its purchase's open vouchers, per exam whichever is fewer requests; the whole open
slice if that is under the cap and cheaper; unlinked ones by purchase); each open
voucher that has since been used or deactivated fetched on its own, or its purchase
whole where that is fewer; and one rolling night's share (1/``nights``) of what the
good full read would pay for the rest: used and deactivated vouchers, and expired
ones that tonight's open slices do not already return.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

Records = dict[str, list[dict[str, Any]]]
RESOURCES = ("partners", "programs", "purchases", "vouchers")
Leaf = tuple[bool, bool]  # (isUsed, isActive)


def pages(n: int, page: int) -> int:
    """Requests to read ``n`` records (at least one)."""
    return max(1, math.ceil(n / page))


def truth(tenant: Any) -> Records:
    """Every record of every resource, as the API serializes it."""
    return {r: tenant.records(r) for r in RESOURCES}


@dataclass(frozen=True)
class FullYardsticks:
    naive: int
    good: int
    programs_by_purchase: frozenset[str]  # the programs the good plan reads purchase by purchase


def _lists(records: Records, page: int, cap: int) -> int:
    """Partners and programs whole, purchases per program (per partner inside a program over the cap)."""
    by_program = Counter(p["programName"] for p in records["purchases"])
    pairs = Counter((p["programName"], p["partnerName"]) for p in records["purchases"])
    cost = pages(len(records["partners"]), page) + pages(len(records["programs"]), page)
    for program, n in by_program.items():
        cost += pages(n, page) if n <= cap else sum(pages(m, page) for (g, _), m in pairs.items() if g == program)
    return cost


def floor(records: Records, page: int) -> int:
    """Requests of the floor (see the module docstring)."""
    return sum(pages(len(records[r]), page) for r in RESOURCES)


def naive_full(records: Records, page: int) -> int:
    """Requests of the naive full read (see the module docstring)."""
    by_status = Counter(p["status"] for p in records["purchases"])
    per_purchase = Counter(v["voucherPurchaseCode"] for v in records["vouchers"])
    cost = pages(len(records["partners"]), page) + pages(len(records["programs"]), page)
    cost += sum(pages(n, page) for n in by_status.values())
    return cost + sum(pages(per_purchase[p["voucherPurchaseCode"]], page) for p in records["purchases"])


def _leaf(v: dict[str, Any]) -> Leaf:
    return (bool(v["isUsed"]), bool(v["isActive"]))


def over_cap_leaves(vouchers: list[dict[str, Any]], cap: int) -> set[Leaf]:
    """Boolean slices still over the cap after the isUsed/isActive splits."""
    by_used = Counter(bool(v["isUsed"]) for v in vouchers)
    by_leaf = Counter(_leaf(v) for v in vouchers)
    return {leaf for leaf, n in by_leaf.items() if by_used[leaf[0]] > cap and n > cap}


def _boolean_cost(vouchers: list[dict[str, Any]], page: int, cap: int) -> int:
    """The isUsed slices, split by isActive where over the cap; over-cap leaves cost nothing here."""
    by_used = Counter(bool(v["isUsed"]) for v in vouchers)
    by_leaf = Counter(_leaf(v) for v in vouchers)
    cost = 0
    for used in (True, False):
        if by_used[used] <= cap:
            cost += pages(by_used[used], page)
        else:
            cost += sum(pages(by_leaf[(used, a)], page) for a in (True, False) if by_leaf[(used, a)] <= cap)
    return cost


def program_costs(records: Records, page: int, cap: int, vouchers: list[dict[str, Any]] | None = None
                  ) -> dict[str, tuple[int, int]]:
    """Per program, (A, B): requests for its vouchers in over-cap slices read by purchase, or by exam slices."""
    vouchers = records["vouchers"] if vouchers is None else vouchers
    program_of = {p["voucherPurchaseCode"]: p["programName"] for p in records["purchases"]}
    per_purchase = Counter(v["voucherPurchaseCode"] for v in records["vouchers"])
    over = over_cap_leaves(vouchers, cap)
    cells: Counter[tuple[Leaf, str]] = Counter()
    inside: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in vouchers:
        if _leaf(v) in over:
            inside[program_of.get(v["voucherPurchaseCode"], "")].append(v)
            if v.get("storeExamCode"):
                cells[(_leaf(v), v["storeExamCode"])] += 1
    costs = {}
    for program, members in inside.items():
        held = {v["voucherPurchaseCode"] for v in members}
        by_purchase = sum(pages(per_purchase[p], page) for p in held)
        slices = {(_leaf(v), v["storeExamCode"]) for v in members if v.get("storeExamCode")}
        unreached = {v["voucherPurchaseCode"] for v in members
                     if not v.get("storeExamCode") or cells[(_leaf(v), v["storeExamCode"])] > cap}
        by_slices = sum(pages(cells[s], page) for s in slices if cells[s] <= cap)
        costs[program] = (by_purchase, by_slices + sum(pages(per_purchase[p], page) for p in unreached))
    return costs


def full_yardsticks(records: Records, page: int, cap: int) -> FullYardsticks:
    """Naive and good requests for a full read of these records."""
    costs = program_costs(records, page, cap)
    good = _lists(records, page, cap) + _boolean_cost(records["vouchers"], page, cap)
    good += sum(min(a, b) for a, b in costs.values())
    return FullYardsticks(naive_full(records, page), good, frozenset(p for p, (a, b) in costs.items() if a <= b))


def _expires(v: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(v["expirationDateUtc"].replace("Z", "+00:00"))


def _unused_active(v: dict[str, Any]) -> bool:
    return not v["isUsed"] and v["isActive"]


def is_open(v: dict[str, Any], at: dt.datetime) -> bool:
    """Unused, active and not expired at ``at``."""
    return not v["isUsed"] and v["isActive"] and _expires(v) >= at


def changed_purchases(before: Records, now: Records) -> set[str]:
    """Purchases new since ``before``, or whose status or quantity moved."""
    old = {p["voucherPurchaseCode"]: (p["status"], p["quantity"]) for p in before["purchases"]}
    return {p["voucherPurchaseCode"] for p in now["purchases"] if old.get(p["voucherPurchaseCode"]) !=
            (p["status"], p["quantity"])}


def good_nightly(before: Records, now: Records, since: dt.datetime, page: int, cap: int, nights: int) -> int:
    """Requests of the good nightly read (see the module docstring)."""
    changed = changed_purchases(before, now)
    per_purchase = Counter(v["voucherPurchaseCode"] for v in now["vouchers"])
    current = {v["id"]: v for v in now["vouchers"]}
    cost = _lists(now, page, cap) + sum(pages(per_purchase[p], page) for p in changed)
    was_open = [v for v in before["vouchers"] if is_open(v, since) and v["voucherPurchaseCode"] not in changed]
    # Unused and active vouchers come back in the open slices whatever their expiry.
    open_now = [current[v["id"]] for v in was_open if _unused_active(current[v["id"]])]
    left = [v for v in was_open if not _unused_active(current[v["id"]])]
    open_cost, sliced_exams = _open_cover(now["vouchers"], open_now, page, cap)
    cost += open_cost
    left_by_purchase = Counter(v["voucherPurchaseCode"] for v in left)
    cost += sum(min(n, pages(per_purchase[p], page)) for p, n in left_by_purchase.items())
    rest = [v for v in now["vouchers"] if v["voucherPurchaseCode"] not in changed and not is_open(v, since)
            and not (_unused_active(v) and v.get("storeExamCode") in sliced_exams)]
    settled = _boolean_cost(rest, page, cap) if rest else 0
    settled += sum(min(a, b) for a, b in program_costs(now, page, cap, rest).values())
    return cost + math.ceil(settled / nights)


def _open_cover(vouchers: list[dict[str, Any]], open_now: list[dict[str, Any]], page: int, cap: int
                ) -> tuple[int, set[str] | Any]:
    """Cheapest cover of tonight's open vouchers; the exams whose open slice it reads (all: ``ALL``)."""
    slice_size = Counter(v.get("storeExamCode") for v in vouchers if _unused_active(v))
    whole = sum(slice_size.values())
    by_exam: dict[str | None, Counter[str]] = defaultdict(Counter)
    for v in open_now:
        by_exam[v.get("storeExamCode")][v["voucherPurchaseCode"]] += 1
    cost, sliced = 0, set()
    for exam, held in by_exam.items():
        by_purchase = sum(pages(n, page) for n in held.values())
        if exam is not None and slice_size[exam] <= cap and pages(slice_size[exam], page) < by_purchase:
            cost += pages(slice_size[exam], page)
            sliced.add(exam)
        else:
            cost += by_purchase
    if whole <= cap and pages(whole, page) <= cost:
        return pages(whole, page), ALL
    return cost, sliced


class _All:
    """Every exam (and none): the whole open slice was read."""

    def __contains__(self, item: object) -> bool:
        return True


ALL = _All()
