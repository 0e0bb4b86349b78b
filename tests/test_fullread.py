"""Unit tests of the full read (fullread.py, waves.py) and its ledger over small fake APIs: no HTTP, no simulator.

The full read must return every voucher once, and never send more requests than the naive plan
(purchases by status, then each purchase's vouchers), whatever its estimates say.
"""

from __future__ import annotations

from collections import Counter

import pytest

from certiverse_warehouse.simulator.yardsticks import naive_full
from certiverse_warehouse.sources.certiverse.client import Query, TooManyRecordsError
from certiverse_warehouse.sources.certiverse.facts import BOTH_SIDES, voucher_facts
from certiverse_warehouse.sources.certiverse.fullread import FullRead
from certiverse_warehouse.sources.certiverse.ledger import SHARED, CountingClient, Ledger
from certiverse_warehouse.sources.certiverse.plans import ProgramPlan
from certiverse_warehouse.sources.certiverse.rates import SAMPLE_FIRST, SAMPLE_MAX, LinkRates, sample_order
from certiverse_warehouse.sources.certiverse.waves import Progress, Waves, units_of
from tests.fakes import CAP, DUO, FAILED, ONE_EXAM, PAGE, SOLO, TWO_EXAMS, FakeApi, catalog, program, purchase, vouchers_of



def empties(n: int, program_name: str) -> list[dict]:
    """Checkout purchases without vouchers: the naive plan pays a request for each, a budget to bet with."""
    return [dict(purchase(f"F{i:03}", program_name, quantity=5, status="CheckoutFailed"), quantityRemaining=0)
            for i in range(n)]


def records_of(api: FakeApi) -> dict:
    return {r: api.records[r] for r in ("partners", "programs", "purchases", "vouchers")}


def read_all_of(api: FakeApi, cap: int = CAP, **kwargs) -> tuple[FullRead, Counter]:
    read = FullRead(catalog(api, cap=cap), PAGE, **kwargs)
    ids = Counter(v["id"] for page in read.pages(workers=2) for v in page)
    return read, ids


def _tenant(duo_exams, solo_exams=("SOLO-1",)):
    """A fake API whose Duo vouchers carry ``duo_exams`` in turn (None: unlinked)."""
    vouchers = [v for p in SOLO for v in vouchers_of(p, list(solo_exams))]
    vouchers += [v for p in DUO for v in vouchers_of(p, list(duo_exams))]
    return FakeApi({"programs": [ONE_EXAM, TWO_EXAMS], "purchases": SOLO + DUO + [FAILED], "vouchers": vouchers},
                   page_size=PAGE, cap=CAP), vouchers


# -- the ledger ---------------------------------------------------------------------------------

def test_the_ledger_charges_each_request_to_the_programs_its_query_serves():
    api, _ = _tenant(["DUO-1", "DUO-2"])
    facts = voucher_facts([ONE_EXAM, TWO_EXAMS], SOLO + DUO)
    ledger = Ledger()
    client = CountingClient(api, ledger, lambda q: units_of(facts, q))
    whole = Query.of("vouchers", purchaseCode="D0")
    data, link = client.page(whole)
    assert len(list(client.follow(whole, link))) == -(-DUO[0]["quantity"] // PAGE) - 1
    client.page(Query.of("vouchers", isUsed=True, isActive=True, storeExamCode="SOLO-1"))
    with pytest.raises(TooManyRecordsError):
        client.page(Query.of("vouchers", isUsed=False))  # refused: a request all the same
    assert ledger.by_unit() == {"Duo": -(-DUO[0]["quantity"] // PAGE), "Solo": 1, SHARED: 1}
    assert ledger.spent() == len(api.requests)


def test_a_full_read_counts_every_request_it_sends():
    api, _ = _tenant(["DUO-1", None])
    read, _ = read_all_of(api)
    assert read.counts["requests"] == len(api.requests)
    assert read.counts["naive_requests"] == naive_full(records_of(api), PAGE)


# -- every voucher once ---------------------------------------------------------------------------

def test_full_read_returns_every_voucher_once_when_some_are_unlinked():
    api, vouchers = _tenant(["DUO-1", None])
    read, ids = read_all_of(api)
    assert ids == Counter(v["id"] for v in vouchers)
    assert read.counts["purchases_sampled"] > 0


def test_a_first_read_learns_from_its_sample_to_read_unlinked_programs_by_purchase():
    api, vouchers = _tenant([None])
    read, ids = read_all_of(api)
    assert ids == Counter(v["id"] for v in vouchers)
    assert [q for q in api.queries() if q.params.get("storeExamCode", "").startswith("DUO")] == []
    assert {q.params["purchaseCode"] for q in api.queries() if "purchaseCode" in q.params} >= {
        p["voucherPurchaseCode"] for p in DUO}


def test_a_sample_that_finds_nothing_unlinked_stops_after_its_first_batch():
    api, _ = _tenant(["DUO-1", "DUO-2"])
    read, _ = read_all_of(api)
    strata = {(False, True), (True, True)}  # one exam or several; every purchase has vouchers left
    assert read.counts["purchases_sampled"] == len(strata) * SAMPLE_FIRST


def test_with_the_warehouses_knowledge_no_sample_is_read():
    api, vouchers = _tenant([None])
    read, ids = read_all_of(api, known_unlinked=frozenset(p["voucherPurchaseCode"] for p in DUO))
    assert ids == Counter(v["id"] for v in vouchers)
    assert read.counts["purchases_sampled"] == 0
    assert read.counts["programs_read_by_purchase"] == 1


def test_when_nothing_spares_a_request_every_purchase_is_read_whole_once():
    unused = [dict(p, quantityUsed=0, quantityRemaining=p["quantity"]) for p in SOLO + DUO]
    vouchers = [v for p in unused for v in vouchers_of(p, [None], used=0)]
    api = FakeApi({"programs": [ONE_EXAM, TWO_EXAMS], "purchases": unused, "vouchers": vouchers}, page_size=PAGE,
                  cap=CAP)
    _, ids = read_all_of(api, known_unlinked=frozenset(p["voucherPurchaseCode"] for p in unused))
    assert ids == Counter(v["id"] for v in vouchers)
    assert all(set(q.params) == {"purchaseCode"} for q in api.queries())
    assert len(api.queries()) == len(unused)


# -- a misleading sample: never more than the naive plan ---------------------------------------------

MANY = 40  # purchases of a program
MISLEADING_CAP = 300  # Duo's unused vouchers over it, each of its two exam slices under it


def misleading(empty: int = 0) -> FakeApi:
    """Duo purchases, linked where the sample looks (the first of its fixed order) and unlinked elsewhere;
    ``empty`` checkout purchases besides, which the naive plan pays a request each for."""
    duo = [purchase(f"M{i:02}", "Duo", quantity=12, used=0) for i in range(MANY)]
    sampled = set(sample_order(p["voucherPurchaseCode"] for p in duo)[:SAMPLE_MAX])
    vouchers = [v for p in duo for v in vouchers_of(p, ["DUO-1", "DUO-2"] if p["voucherPurchaseCode"] in sampled
                                                     else ["DUO-1", None])]
    return FakeApi({"programs": [TWO_EXAMS], "purchases": duo + empties(empty, "Duo"), "vouchers": vouchers}, page_size=PAGE,
                   cap=MISLEADING_CAP)


def test_a_sample_that_says_the_opposite_of_the_truth_costs_no_more_than_the_naive_plan():
    api = misleading()
    read, ids = read_all_of(api, cap=MISLEADING_CAP)
    assert ids == Counter(v["id"] for v in api.records["vouchers"])
    assert len(api.requests) <= naive_full(records_of(api), PAGE), read.counts


def test_a_program_is_read_by_exam_only_when_its_worst_case_fits_in_what_the_naive_plan_leaves():
    tight, roomy = misleading(), misleading(empty=2 * MANY)
    read_all_of(tight, cap=MISLEADING_CAP)
    read, ids = read_all_of(roomy, cap=MISLEADING_CAP)
    assert not [q for q in tight.queries() if "storeExamCode" in q.params]
    assert [q for q in roomy.queries() if "storeExamCode" in q.params]
    assert ids == Counter(v["id"] for v in roomy.records["vouchers"])
    assert len(roomy.requests) <= naive_full(records_of(roomy), PAGE), read.counts


def test_programs_read_by_exam_teach_those_still_waiting():
    programs = [program(f"P{k}", f"E{k}-1", f"E{k}-2") for k in range(4)]
    purchases, vouchers = [], []
    for k in range(4):
        mine = [purchase(f"P{k}-{i:02}", f"P{k}", quantity=12, used=4) for i in range(MANY)]
        linked = set(sample_order(p["voucherPurchaseCode"] for p in mine)[:2])
        purchases += mine
        vouchers += [v for p in mine for v in vouchers_of(p, [f"E{k}-1", f"E{k}-2"] if p["voucherPurchaseCode"] in
                                                             linked else [f"E{k}-1", None])]
    api = FakeApi({"programs": programs, "purchases": purchases + empties(MANY, "P0"), "vouchers": vouchers}, page_size=PAGE,
                  cap=4 * MISLEADING_CAP)
    read, ids = read_all_of(api, cap=4 * MISLEADING_CAP)
    assert ids == Counter(v["id"] for v in vouchers)
    sliced = {q.params["storeExamCode"].split("-")[0] for q in api.queries() if "storeExamCode" in q.params}
    assert 0 < len(sliced) < len(programs), read.counts  # some bet on, the others read by purchase after
    assert read.counts["waves"] >= 2
    assert len(api.requests) <= naive_full(records_of(api), PAGE), read.counts


# -- switching to reading by purchase ----------------------------------------------------------------

def test_an_exam_slice_over_the_cap_switches_its_program_to_reading_by_purchase():
    duo = [purchase(f"D{i:02}", "Duo", quantity=12, used=4) for i in range(30)]
    vouchers = [v for p in duo for v in vouchers_of(p, ["DUO-1"])]  # all behind one of its two exams
    cap = sum(p["quantityRemaining"] for p in duo) - 1  # spread evenly its unused slices fit; DUO-1's does not
    api = FakeApi({"programs": [TWO_EXAMS], "purchases": duo + empties(2 * len(duo), "Duo"), "vouchers": vouchers},
                  page_size=PAGE, cap=cap)
    read, ids = read_all_of(api, cap=cap, known_unlinked=frozenset())
    assert ids == Counter(v["id"] for v in vouchers)
    assert Query.of("vouchers", isUsed=False, isActive=True, storeExamCode="DUO-1") in api.queries()
    assert read.counts["programs_switched"] == 1
    assert not [q for q in api.queries() if {"storeExamCode", "purchaseCode"} <= set(q.params)]
    assert len(api.requests) <= naive_full(records_of(api), PAGE)


def test_a_program_past_its_estimate_drops_its_exam_slices_not_sent_yet():
    facts = voucher_facts([ONE_EXAM, TWO_EXAMS], SOLO + DUO)
    ledger = Ledger()
    plans = {"Duo": ProgramPlan(BOTH_SIDES, cost=3, by_purchase=16, slices=10),
             "Solo": ProgramPlan(frozenset(), cost=8, by_purchase=8, slices=0)}
    waves = Waves(facts, BOTH_SIDES, frozenset(), CAP, PAGE, plans, LinkRates(known=frozenset()),
                  Progress(facts, BOTH_SIDES), ledger, budget=100)
    duo_slice = Query.of("vouchers", isUsed=False, isActive=True, storeExamCode="DUO-2")
    assert not waves._dropped(duo_slice)
    for _ in range(4):
        ledger.charge(("Duo",))
    assert waves._dropped(duo_slice)
    assert waves.switched == {"Duo"}


def test_a_short_purchase_is_completed_on_the_side_read_by_exam_only():
    used_up = [purchase(f"U{i}", "Duo", quantity=3, used=3) for i in range(30)]  # the used side spares them
    duo = [purchase(f"D{i}", "Duo", quantity=20, used=4) for i in range(30)]
    cap = 300  # the used side under it, the unused one over it
    vouchers = [v for p in used_up for v in vouchers_of(p, ["DUO-1"])]
    vouchers += [v for p in duo[:3] for v in vouchers_of(p, ["DUO-1", "DUO-2", "DUO-1", None])]
    vouchers += [v for p in duo[3:] for v in vouchers_of(p, ["DUO-1", "DUO-2"])]
    api = FakeApi({"programs": [TWO_EXAMS], "purchases": used_up + duo + empties(2 * len(duo), "Duo"),
                   "vouchers": vouchers}, page_size=PAGE, cap=cap)
    read, ids = read_all_of(api, cap=cap, known_unlinked=frozenset(p["voucherPurchaseCode"] for p in duo[:3]))
    assert ids == Counter(v["id"] for v in vouchers)
    assert Query.of("vouchers", isUsed=True) in api.queries()
    completed = {q for q in api.queries() if "purchaseCode" in q.params}
    assert completed == {Query.of("vouchers", purchaseCode=p["voucherPurchaseCode"], isUsed=False) for p in duo[:3]}


def test_vouchers_of_a_purchase_the_listing_did_not_return_are_read_whole(caplog):
    stray = purchase("X0", "Solo", quantity=12, used=4)  # not in the purchase list the catalog reads
    api, vouchers = _tenant(["DUO-1", "DUO-2"])
    api.records["vouchers"] += vouchers_of(stray, ["SOLO-1", None])
    read, ids = read_all_of(api)
    assert ids == Counter(v["id"] for v in api.records["vouchers"])
    assert Query.of("vouchers", purchaseCode="X0") in api.queries()
    assert "1 purchases the purchase listing did not return hold vouchers (X0)" in caplog.text
