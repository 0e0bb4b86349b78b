"""Unit tests of the full-read planner (plans.py) over small fake catalogs: no HTTP, no simulator."""

from __future__ import annotations

from collections import Counter

from certiverse_warehouse.sources.certiverse.client import Query
from certiverse_warehouse.sources.certiverse.plans import (
    SAMPLE_FIRST,
    FullRead,
    LinkRates,
    VoucherSplit,
    choose_programs_read_by_purchase,
    estimated_requests,
    full_read_queries,
    holds_unlinked,
    over_cap_slices,
    pages,
    purchases_to_complete,
    voucher_facts,
    voucher_split,
)
from tests.fakes import FakeApi, catalog, program, purchase, vouchers_of

PAGE = 10
CAP = 100
ONE_EXAM = program("Solo", "SOLO-1")
TWO_EXAMS = program("Duo", "DUO-1", "DUO-2")
SOLO = [purchase(f"S{i}", "Solo", quantity=12, used=4) for i in range(8)]
DUO = [purchase(f"D{i}", "Duo", quantity=12, used=4) for i in range(8)]
FAILED = purchase("F0", "Solo", quantity=5, used=0, status="CheckoutFailed")
FAILED["quantityRemaining"] = 0


def facts(purchases=SOLO + DUO + [FAILED], programs=(ONE_EXAM, TWO_EXAMS)):
    return voucher_facts(list(programs), list(purchases))


def test_facts_list_each_programs_exams_and_its_purchases_that_can_hold_vouchers():
    f = facts()
    assert f.exams_by_program == {"Solo": ("SOLO-1",), "Duo": ("DUO-1", "DUO-2")}
    assert f.programs_by_exam["DUO-2"] == {"Duo"}
    assert f.purchases_by_program["Solo"] == tuple(p["voucherPurchaseCode"] for p in SOLO)  # the failed one left out
    assert f.used["Duo"] == sum(p["quantityUsed"] for p in DUO)
    assert f.unused["Solo"] == sum(p["quantityRemaining"] for p in SOLO)


def test_a_slice_is_over_the_cap_when_the_counters_say_so():
    f = facts()
    used = sum(p["quantityUsed"] for p in SOLO + DUO)
    unused = sum(p["quantityRemaining"] for p in SOLO + DUO)
    assert over_cap_slices(f, cap=used) == {False}
    assert over_cap_slices(f, cap=unused) == frozenset()
    assert over_cap_slices(f, cap=used - 1) == {True, False}


def test_a_program_whose_purchases_all_hold_unlinked_vouchers_is_read_by_purchase():
    f = facts()
    rates = LinkRates(known=frozenset(p["voucherPurchaseCode"] for p in DUO))
    chosen = choose_programs_read_by_purchase(f, rates, frozenset({True, False}), PAGE, CAP)
    assert chosen == {"Duo"}


def test_no_program_is_read_by_purchase_when_no_slice_is_over_the_cap():
    rates = LinkRates(known=frozenset(p["voucherPurchaseCode"] for p in DUO))
    assert choose_programs_read_by_purchase(facts(), rates, frozenset(), PAGE, CAP) == frozenset()


def test_a_program_over_the_cap_even_spread_over_its_exams_is_read_by_purchase():
    cap = sum(p["quantityRemaining"] for p in SOLO) - 1  # Solo's one exam slice would overflow
    chosen = choose_programs_read_by_purchase(facts(), LinkRates(known=frozenset()), frozenset({False}), PAGE, cap)
    assert chosen == {"Solo"}


def test_purchases_of_a_program_the_program_list_does_not_know_are_read_by_purchase():
    stray = purchase("X0", "Unlisted", quantity=3)
    f = facts(SOLO + [stray])
    assert choose_programs_read_by_purchase(f, LinkRates(known=frozenset()), frozenset(), PAGE, CAP) == {"Unlisted"}


def test_a_stratum_rate_weighs_each_purchase_by_its_pages():
    f = facts()
    half = LinkRates(by_stratum={f.stratum("D0"): 0.5, f.stratum("S0"): 0.0})
    plan, every_purchase = estimated_requests(f, frozenset(), half, frozenset({True, False}), PAGE)
    per_purchase = pages(SOLO[0]["quantity"], PAGE)
    assert every_purchase == per_purchase * len(SOLO + DUO)
    slices = sum(len(exams) * (pages(f.used[p] / len(exams), PAGE) + pages(f.unused[p] / len(exams), PAGE))
                 for p, exams in f.exams_by_program.items())
    assert plan == len({True, False}) + slices + round(0.5 * per_purchase * len(DUO))


def test_queries_over_the_cap_start_at_exam_slices_and_programs_read_by_purchase_come_whole():
    f = facts()
    split = voucher_split(f, frozenset({"Duo"}), frozenset())
    queries = full_read_queries(f, frozenset({"Duo"}), frozenset({False}), split, frozenset())
    assert Query.of("vouchers", isUsed=True) in queries
    assert Query.of("vouchers", isUsed=False, isActive=True, storeExamCode="SOLO-1") in queries
    assert Query.of("vouchers", isUsed=False, isActive=False) in queries
    assert not [q for q in queries if q.params.get("storeExamCode", "").startswith("DUO")]
    assert {q.params["purchaseCode"] for q in queries if "purchaseCode" in q.params} == {
        p["voucherPurchaseCode"] for p in DUO}


def test_when_every_program_is_read_by_purchase_no_slice_is_read():
    f = facts()
    split = voucher_split(f, frozenset({"Duo", "Solo"}), frozenset())
    queries = full_read_queries(f, frozenset({"Duo", "Solo"}), frozenset({False}), split, frozenset({"S0"}))
    assert all(set(q.params) == {"purchaseCode"} for q in queries)
    assert len(queries) == len(SOLO + DUO) - 1  # S0 was read whole already


def test_split_narrows_by_isused_then_isactive_then_exam_then_purchase():
    split = voucher_split(facts(), frozenset({"Duo"}), frozenset({"S1"}))
    root = Query.of("vouchers", isUsed=True)
    active = root.narrowed(isActive=True)
    assert split(Query.of("vouchers", storeExamCode="SOLO-1")) == [
        Query.of("vouchers", storeExamCode="SOLO-1", isUsed=True), Query.of("vouchers", storeExamCode="SOLO-1",
                                                                            isUsed=False)]
    assert split(root) == [active, root.narrowed(isActive=False)]
    assert split(active) == [active.narrowed(storeExamCode="SOLO-1")]
    exam = active.narrowed(storeExamCode="SOLO-1")
    assert split(exam) == [exam.narrowed(purchaseCode=p["voucherPurchaseCode"]) for p in SOLO if
                           p["voucherPurchaseCode"] != "S1"]


def test_a_purchase_over_the_cap_splits_by_its_booleans_and_no_further():
    split = VoucherSplit((), {})
    one = Query.of("vouchers", purchaseCode="P")
    assert split(one) == [one.narrowed(isUsed=True), one.narrowed(isUsed=False)]
    used = one.narrowed(isUsed=True)
    assert split(used) == [used.narrowed(isActive=True), used.narrowed(isActive=False)]
    assert split(used.narrowed(isActive=True)) is None


def test_completion_lists_purchases_holding_fewer_vouchers_than_they_should():
    pending = purchase("V0", "Solo", quantity=4, status="VoucherCreation")
    refunded = purchase("R0", "Solo", quantity=3, status="Refunded")
    f = facts(SOLO[:3] + [pending, refunded, FAILED])
    seen = Counter({"S0": SOLO[0]["quantity"], "S1": SOLO[1]["quantity"] - 1, "V0": pending["quantity"] - 1,
                    "R0": refunded["quantity"]})
    assert purchases_to_complete(f, seen, read_whole=["S2"]) == ["S1", "V0"]


def test_a_purchase_holds_unlinked_vouchers_only_in_slices_over_the_cap():
    linked = vouchers_of(SOLO[0], ["SOLO-1"])
    unlinked_used = vouchers_of(SOLO[1], [None], used=SOLO[1]["quantity"])
    unlinked_open = vouchers_of(SOLO[2], [None], used=0)
    found = holds_unlinked(linked + unlinked_used + unlinked_open, frozenset({False}))
    assert found == {"S2"}


def _tenant(duo_exams, solo_exams=("SOLO-1",)):
    """A fake API whose Duo vouchers carry ``duo_exams`` in turn (None: unlinked)."""
    vouchers = [v for p in SOLO for v in vouchers_of(p, list(solo_exams))]
    vouchers += [v for p in DUO for v in vouchers_of(p, list(duo_exams))]
    return FakeApi({"programs": [ONE_EXAM, TWO_EXAMS], "purchases": SOLO + DUO + [FAILED], "vouchers": vouchers},
                   page_size=PAGE, cap=CAP), vouchers


def _read(api, **kwargs):
    read = FullRead(catalog(api, cap=CAP), PAGE, **kwargs)
    ids = Counter(v["id"] for page in read.pages(workers=2) for v in page)
    return read, ids


def test_full_read_returns_every_voucher_once_when_some_are_unlinked():
    api, vouchers = _tenant(["DUO-1", None])
    read, ids = _read(api)
    assert ids == Counter(v["id"] for v in vouchers)
    assert read.counts["purchases_sampled"] > 0


def test_a_first_read_learns_from_its_sample_to_read_unlinked_programs_by_purchase():
    api, vouchers = _tenant([None])
    read, ids = _read(api)
    assert ids == Counter(v["id"] for v in vouchers)
    duo_slices = [q for q in api.queries() if q.params.get("storeExamCode", "").startswith("DUO")]
    assert duo_slices == []
    assert {q.params["purchaseCode"] for q in api.queries() if "purchaseCode" in q.params} >= {
        p["voucherPurchaseCode"] for p in DUO}


def test_a_sample_that_finds_nothing_unlinked_stops_after_its_first_batch():
    api, _ = _tenant(["DUO-1", "DUO-2"])
    read, _ = _read(api)
    strata = {(False, True), (True, True)}  # one exam or several; every purchase has vouchers left
    assert read.counts["purchases_sampled"] == len(strata) * SAMPLE_FIRST


def test_with_the_warehouses_knowledge_no_sample_is_read():
    api, vouchers = _tenant([None])
    read, ids = _read(api, known_unlinked=frozenset(p["voucherPurchaseCode"] for p in DUO))
    assert ids == Counter(v["id"] for v in vouchers)
    assert read.counts["purchases_sampled"] == 0
    assert read.counts["programs_read_by_purchase"] == 1


def test_when_slices_cost_no_less_than_every_purchase_every_purchase_is_read_whole():
    api, vouchers = _tenant([None], solo_exams=[None])
    _, ids = _read(api, known_unlinked=frozenset(p["voucherPurchaseCode"] for p in SOLO + DUO))
    assert ids == Counter(v["id"] for v in vouchers)
    assert all(set(q.params) == {"purchaseCode"} for q in api.queries())
    assert len(api.queries()) == len(SOLO + DUO)


# -- how many records a query should return, by the counters -------------------------------------

def test_the_counters_give_the_expected_size_of_slices_and_purchases():
    from certiverse_warehouse.sources.certiverse.plans import expected_records

    programs = [program("Solo", "S-1"), program("Duo", "D-1", "D-2")]
    purchases = [purchase("P1", "Solo", quantity=30, used=10), purchase("P2", "Duo", quantity=50, used=5)]
    known = voucher_facts(programs, purchases)
    vouchers = Query.of("vouchers", isUsed=False)
    assert expected_records(known, vouchers) == 20 + 45
    assert expected_records(known, Query.of("vouchers", isUsed=True)) == 10 + 5
    assert expected_records(known, vouchers.narrowed(isActive=True)) == 65  # deactivated ones are not counted apart
    assert expected_records(known, vouchers.narrowed(isActive=False)) is None
    assert expected_records(known, vouchers.narrowed(storeExamCode="S-1")) == 20  # the only exam of its program
    assert expected_records(known, vouchers.narrowed(storeExamCode="D-1")) is None  # a share of two exams: unknown
    assert expected_records(known, Query.of("vouchers", purchaseCode="P2")) == 50
    assert expected_records(known, Query.of("vouchers", purchaseCode="P2", isUsed=True)) == 5
    assert expected_records(known, Query.of("vouchers", voucherCode="C-1")) is None
