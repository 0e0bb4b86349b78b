"""Unit tests of the nightly planner and the nightly-vs-full decision, over small fake snapshots."""

from __future__ import annotations

import datetime as dt

import numpy as np

from certiverse_warehouse.sources.certiverse.client import Query
from certiverse_warehouse.sources.certiverse.nightly import (
    OPEN_SLICE,
    changed_purchases,
    cover_open_vouchers,
    leaver_queries,
    open_rows,
    plan_nightly,
    rolling_queries,
    slot,
)
from certiverse_warehouse.sources.certiverse.planning import DEFAULT_PAGE_SIZE, api_now, plan_voucher_read
from certiverse_warehouse.sources.certiverse.fullread import FullRead
from certiverse_warehouse.sources.certiverse.facts import voucher_facts
from certiverse_warehouse.sources.certiverse.snapshot import Snapshot
from tests.fakes import FakeApi, catalog, program, purchase

PAGE = 10
CAP = 1_000
NIGHTS = 7
SINCE = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
LATER = SINCE + dt.timedelta(days=90)
EXPIRED = SINCE - dt.timedelta(days=1)
# One exam whose open vouchers sit in many small purchases (its slice is cheaper); one whose open vouchers
# sit in one purchase, beside many expired ones its slice would return too (the purchase is cheaper).
PROGRAMS = [program("Wide", "WIDE-1"), program("Narrow", "NARROW-1")]
WIDE = [purchase(f"W{i}", "Wide", quantity=2) for i in range(30)]
NARROW = [purchase("N0", "Narrow", quantity=5), purchase("N1", "Narrow", quantity=15)]


def snapshot(rows, purchases=WIDE + NARROW, unlinked_settled=()):
    """Live rows are (id, purchase code, exam or None, expiry)."""
    snap = Snapshot()
    snap.live.add((vid, f"C-{vid}", code, exam, expires) for vid, code, exam, expires in rows)
    snap.purchases = {p["voucherPurchaseCode"]: (p["status"], p["quantity"]) for p in purchases}
    snap.unlinked_settled = set(unlinked_settled)
    snap.vouchers = sum(p["quantity"] for p in purchases)
    return snap


ROWS = [(f"{p['voucherPurchaseCode']}-{i}", p["voucherPurchaseCode"], "WIDE-1", LATER) for p in WIDE for i in range(2)]
ROWS += [(f"N0-{i}", "N0", "NARROW-1", LATER) for i in range(5)]
ROWS += [(f"N1-{i}", "N1", "NARROW-1", EXPIRED) for i in range(15)]


def facts(purchases=WIDE + NARROW):
    return voucher_facts(PROGRAMS, purchases)


def test_a_voucher_is_open_if_it_had_not_expired_when_the_last_run_started():
    snap = snapshot([("a", "W0", "WIDE-1", LATER), ("b", "W0", "WIDE-1", EXPIRED), ("c", "W1", None, SINCE),
                     ("d", "W1", None, None)])
    assert open_rows(snap.live, SINCE).tolist() == [True, False, True, True]


def test_new_purchases_and_those_whose_status_or_quantity_moved_are_changed():
    known = {"W0": ("Complete", 2), "W1": ("VoucherCreation", 2), "W2": ("Complete", 1)}
    assert changed_purchases(WIDE[:4], known) == {"W1", "W2", "W3"}


def test_each_exam_goes_through_its_slice_or_its_purchases_whichever_is_cheaper():
    snap = snapshot(ROWS)
    cap = len(ROWS) - 1  # no whole open slice
    cover = cover_open_vouchers(snap.live, open_rows(snap.live, SINCE), set(), frozenset(), facts(), PAGE, cap)
    assert cover.exams_sliced == {"WIDE-1"} and cover.exams_by_purchase == {"NARROW-1"}
    assert set(cover.queries) == {OPEN_SLICE.narrowed(storeExamCode="WIDE-1"), OPEN_SLICE.narrowed(purchaseCode="N0")}
    assert cover.requests == -(-len(WIDE) * 2 // PAGE) + 1


def test_the_whole_open_slice_is_read_when_it_is_under_the_cap_and_cheaper():
    snap = snapshot(ROWS)
    page = len(ROWS)  # one page holds every live voucher
    cover = cover_open_vouchers(snap.live, open_rows(snap.live, SINCE), set(), frozenset(), facts(), page, CAP)
    assert cover.queries == (OPEN_SLICE,)


def test_unlinked_open_vouchers_and_exams_over_the_cap_go_by_purchase():
    rows = ROWS + [("u", "W0", None, LATER)]
    snap = snapshot(rows)
    cap = len(WIDE)  # WIDE-1's live vouchers exceed it
    cover = cover_open_vouchers(snap.live, open_rows(snap.live, SINCE), {"W5"}, frozenset(), facts(), PAGE, cap)
    by_purchase = {q.params["purchaseCode"] for q in cover.queries if "purchaseCode" in q.params}
    assert by_purchase == {p["voucherPurchaseCode"] for p in WIDE} - {"W5"} | {"N0"}  # W5 is read whole anyway
    assert not cover.exams_sliced


def test_each_rolling_query_belongs_to_exactly_one_night():
    snap = snapshot(ROWS)
    cover = cover_open_vouchers(snap.live, open_rows(snap.live, SINCE), set(), frozenset(), facts(), PAGE, CAP)
    nights = [rolling_queries(facts(), frozenset({"Narrow"}), cover, {"W3"}, set(), n, NIGHTS, frozenset({True}))
              for n in range(NIGHTS)]
    every = [q for night in nights for q in night]
    assert len(every) == len(set(every))
    expected = {Query.of("vouchers", isUsed=u, isActive=a, storeExamCode="WIDE-1") for u, a in
                ((True, True), (False, False))}
    expected.add(Query.of("vouchers", isUsed=True, isActive=False))  # that side is expected under the cap: whole
    expected |= {OPEN_SLICE.narrowed(storeExamCode=e) for e in cover.exams_by_purchase}  # their expired vouchers
    expected |= {Query.of("vouchers", purchaseCode=c) for c in ("N0", "N1", "W3")}  # Narrow is read by purchase
    assert set(every) == expected
    assert all(slot(q.describe() if "purchaseCode" not in q.params else q.params["purchaseCode"], NIGHTS) == n
               for n, night in enumerate(nights) for q in night)


def test_a_changed_purchase_is_read_whole_and_not_again_for_its_open_vouchers():
    moved = dict(NARROW[0], quantity=6, quantityRemaining=6)
    plan = plan_nightly(facts(WIDE + [moved] + NARROW[1:]), snapshot(ROWS), frozenset(), SINCE, 0, NIGHTS, PAGE, CAP)
    assert Query.of("vouchers", purchaseCode="N0") in plan.queries
    assert OPEN_SLICE.narrowed(purchaseCode="N0") not in plan.queries
    assert plan.counts["changed_purchases"] == 1
    assert [ROWS[i][0] for i in plan.watched] == [r[0] for r in ROWS if r[3] >= SINCE]  # the open ones


def test_vouchers_that_left_are_fetched_one_by_one_or_with_their_purchase_when_cheaper():
    snap = snapshot(ROWS)
    n0_rows = [i for i, r in enumerate(ROWS) if r[1] == "N0"]
    w0_row = next(i for i, r in enumerate(ROWS) if r[1] == "W0")
    queries = leaver_queries(snap.live, np.array(n0_rows + [w0_row]), WIDE + NARROW, page=2)
    assert Query.of("vouchers", purchaseCode="N0") in queries  # 5 leavers > 3 pages of N0
    assert Query.of("vouchers", voucherCode=f"C-{ROWS[w0_row][0]}") in queries
    assert len(queries) == 2


def test_without_a_snapshot_the_read_is_full():
    api = FakeApi({"programs": PROGRAMS, "purchases": WIDE + NARROW}, page_size=PAGE)
    read = plan_voucher_read(catalog(api, cap=CAP), None, {}, NIGHTS, as_of=SINCE)
    assert read.mode == "full" and isinstance(read.reader, FullRead)
    assert read.next_state()["night"] == 0 and read.next_state()["read_at"] == SINCE.isoformat()


def test_a_nightly_read_is_chosen_when_cheaper_and_counts_its_nights():
    api = FakeApi({"programs": PROGRAMS, "purchases": WIDE + NARROW}, page_size=PAGE)
    read = plan_voucher_read(catalog(api, cap=len(ROWS) - 1), snapshot(ROWS), {"night": 3, "read_at": SINCE.isoformat()},
                             NIGHTS, as_of=SINCE + dt.timedelta(days=1))
    assert read.mode == "nightly"
    assert read.next_state()["night"] == 4


def test_a_nightly_plan_that_costs_no_less_than_a_full_read_becomes_a_full_read():
    everything_changed = [dict(p, quantity=p["quantity"] + 1) for p in WIDE + NARROW]
    api = FakeApi({"programs": PROGRAMS, "purchases": everything_changed}, page_size=PAGE)
    read = plan_voucher_read(catalog(api, cap=CAP), snapshot(ROWS), {"night": 3}, NIGHTS, as_of=SINCE)
    assert read.mode == "full"
    assert read.reader.known_unlinked == frozenset()


def test_now_is_as_of_then_the_apis_clock_then_the_loaders():
    api_clock = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    with_date = catalog(FakeApi({}, date=api_clock))
    assert api_now(with_date, SINCE) == SINCE
    assert api_now(with_date, None) == api_clock
    assert api_now(catalog(FakeApi({}, date=api_clock)), SINCE.replace(tzinfo=None)) == SINCE
    local = api_now(catalog(FakeApi({})), None)
    assert abs(local - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)


def test_the_page_size_for_estimates_is_the_apis_once_known():
    api = FakeApi({"programs": PROGRAMS, "purchases": WIDE + NARROW}, page_size=PAGE)
    assert plan_voucher_read(catalog(api), None, {}, NIGHTS, as_of=SINCE).reader.page == PAGE
    unknown = FakeApi({"programs": PROGRAMS, "purchases": WIDE + NARROW}, page_size=PAGE, page_size_known=False)
    assert plan_voucher_read(catalog(unknown), None, {}, NIGHTS, as_of=SINCE).reader.page == DEFAULT_PAGE_SIZE


def test_the_nightly_read_fetches_open_vouchers_that_left_their_slice():
    from certiverse_warehouse.sources.certiverse.nightly import NightlyRead
    from certiverse_warehouse.sources.certiverse.plans import voucher_split
    from tests.fakes import vouchers_of

    vouchers = [dict(v, storeExamCode="WIDE-1") for p in WIDE for v in vouchers_of(p, ["WIDE-1"])]
    vouchers[0]["isUsed"] = True  # used since the last run: it left the open slice
    rows = [(v["id"], v["voucherPurchaseCode"], "WIDE-1", LATER) for v in vouchers]
    snap = snapshot(rows, purchases=WIDE)
    api = FakeApi({"programs": PROGRAMS, "purchases": WIDE,
                   "vouchers": [dict(v, voucherCode=f"C-{v['id']}") for v in vouchers]}, page_size=PAGE)
    f = facts(WIDE)
    plan = plan_nightly(f, snap, frozenset(), SINCE, 0, NIGHTS, PAGE, cap=len(rows) - 1)
    read = NightlyRead(catalog(api, cap=len(rows) - 1), snap, plan, voucher_split(f, frozenset(), frozenset()), PAGE)
    ids = [v["id"] for page in read.pages(workers=2) for v in page]
    assert sorted(ids) == sorted(v["id"] for v in vouchers)
    assert Query.of("vouchers", voucherCode=f"C-{vouchers[0]['id']}") in api.queries()
    assert read.counts["left_open"] == 1


# -- how many records a query should return (for reading its pages side by side) --------------------

def test_an_open_slice_is_expected_to_hold_the_live_vouchers_the_warehouse_has_there():
    from certiverse_warehouse.sources.certiverse.nightly import expected_open_or_counted

    expected = expected_open_or_counted(facts(), snapshot(ROWS).live)
    assert expected(OPEN_SLICE) == len(ROWS)
    assert expected(OPEN_SLICE.narrowed(storeExamCode="NARROW-1")) == 5 + 15
    assert expected(OPEN_SLICE.narrowed(purchaseCode="W3")) == 2
    assert expected(OPEN_SLICE.narrowed(storeExamCode="NO-SUCH-EXAM")) == 0


def test_other_nightly_queries_are_expected_at_what_the_counters_say():
    from certiverse_warehouse.sources.certiverse.nightly import expected_open_or_counted

    expected = expected_open_or_counted(facts(), snapshot(ROWS).live)
    n1 = NARROW[1]
    assert expected(Query.of("vouchers", purchaseCode="N1")) == n1["quantityUsed"] + n1["quantityRemaining"]
    assert expected(Query.of("vouchers", isUsed=True, isActive=False)) is None  # deactivated: counters say nothing
