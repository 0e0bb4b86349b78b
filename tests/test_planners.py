"""Unit tests of the planning steps (facts.py, rates.py, plans.py) over small fake catalogs: no HTTP, no simulator."""

from __future__ import annotations

from collections import Counter

from certiverse_warehouse.simulator.yardsticks import naive_full
from certiverse_warehouse.sources.certiverse.client import Query
from certiverse_warehouse.sources.certiverse.facts import (
    BOTH_SIDES,
    BULK,
    naive_requests,
    over_cap_slices,
    pages,
    part,
    part_pages,
    voucher_facts,
    whole_sides,
)
from certiverse_warehouse.sources.certiverse.plans import (
    VoucherSplit,
    choose_programs_read_by_purchase,
    expected_records,
    full_read_estimate,
    program_plans,
    purchases_to_complete,
    voucher_split,
)
from certiverse_warehouse.sources.certiverse.rates import LinkRates, PurchaseSeen
from tests.fakes import CAP, DUO, FAILED, ONE_EXAM, PAGE, SOLO, TWO_EXAMS, program, purchase, vouchers_of



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


def test_the_nightly_reads_by_purchase_a_program_whose_purchases_all_hold_unlinked_vouchers():
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


def test_naive_requests_from_the_catalog_are_the_yardsticks_naive_plan():
    expired = dict(purchase("E0", "Solo", quantity=4, status="CheckoutExpired"), quantityRemaining=0)
    purchases = SOLO + DUO + [FAILED, expired]
    vouchers = [v for p in SOLO for v in vouchers_of(p, ["SOLO-1"])] + [v for p in DUO for v in vouchers_of(p, [None])]
    records = {"partners": [{"id": "p"}], "programs": [ONE_EXAM, TWO_EXAMS], "purchases": purchases,
               "vouchers": vouchers}
    assert naive_requests(facts(purchases), 1, 2, PAGE) == naive_full(records, PAGE)


def test_naive_requests_take_a_purchase_whose_status_does_not_say_at_one_page_the_least_naive_pays():
    pending = purchase("V0", "Solo", quantity=4 * PAGE, status="VoucherCreation")
    one_more_status_listed = 1
    assert naive_requests(facts(SOLO + [pending]), 1, 2, PAGE) == naive_requests(facts(SOLO), 1, 2, PAGE) + 1 \
        + one_more_status_listed


def test_a_part_reads_a_purchase_on_the_sides_asked_for_that_its_counters_say_hold_vouchers():
    f = facts(SOLO + [purchase("U0", "Solo", quantity=12, used=12)])
    assert part(f, "S0", BOTH_SIDES) == Query.of("vouchers", purchaseCode="S0")
    assert part(f, "S0", frozenset({False})) == Query.of("vouchers", purchaseCode="S0", isUsed=False)
    assert part(f, "U0", frozenset({False})) is None  # all used
    assert part(f, "S0", frozenset()) is None
    assert part_pages(f, "S0", frozenset({False}), PAGE) == pages(SOLO[0]["quantityRemaining"], PAGE)
    assert part_pages(f, "U0", frozenset({False}), PAGE) == 0


def test_a_side_under_the_cap_is_read_whole_when_it_spares_more_than_it_costs():
    used_up = [purchase(f"U{i}", "Solo", quantity=3, used=3) for i in range(20)]  # a request spared each
    f = facts(SOLO + used_up)
    assert whole_sides(f, frozenset({False}), PAGE) == {True}
    assert whole_sides(facts(SOLO[:1]), frozenset({False}), PAGE) == frozenset()  # spares nothing
    assert whole_sides(f, frozenset(), PAGE) == BOTH_SIDES  # nothing over the cap: both sides hold everything


def test_likelihood_is_the_share_of_pages_in_purchases_that_held_unlinked_vouchers():
    f = facts()
    one_page, five_pages = PurchaseSeen("D0", 1, False, {}, {}), PurchaseSeen("D1", 5, True, {}, {})
    rates = LinkRates().observed(f, [one_page, five_pages])
    assert rates.likelihood(f, "D2") == (5 + 0.5) / (1 + 5 + 1)
    assert rates.likelihood(f, "S0") == 1.0  # nothing seen of single-exam programs: assume the worst
    assert LinkRates(known=frozenset({"D0"})).likelihood(f, "D0") == 1.0
    assert LinkRates(known=frozenset({"D0"})).likelihood(f, "D1") == 0.0


def test_bulk_purchases_are_learnt_apart_from_small_ones_of_the_same_stratum():
    f = facts(SOLO + DUO + [purchase("DB", "Duo", quantity=BULK * 2, used=BULK)])
    rates = LinkRates().observed(f, [PurchaseSeen("D0", 1, False, {False: 8}, {False: 0})])
    assert rates.unlinked_share(f, "DB", False) == 0.0  # nothing seen of bulk ones: the small ones say
    assert rates.unlinked_share(f, "DB", False, strict=True) == 1.0  # ... but a guess that costs counts none
    rates = rates.observed(f, [PurchaseSeen("DB", 2, True, {False: 100}, {False: 75})])
    assert rates.unlinked_share(f, "DB", False) == 0.75
    assert rates.unlinked_share(f, "D1", False) == 0.0


def test_program_plans_choose_per_side_and_read_by_purchase_a_side_whose_slices_would_be_over_the_cap():
    f = facts()
    cap = f.unused["Solo"] - 1  # Solo's one exam: its unused slice over the cap, its used one under
    plans = program_plans(f, LinkRates(known=frozenset()), BOTH_SIDES, PAGE, cap)
    assert plans["Solo"].exam_sides == {True}
    assert plans["Solo"].cost == pages(f.used["Solo"], PAGE) + sum(pages(p["quantityRemaining"], PAGE) for p in SOLO)
    assert plans["Solo"].by_purchase == sum(pages(p["quantity"], PAGE) for p in SOLO)
    assert plans["Duo"].exam_sides == {True}  # unused: its exam slices cost as much as its purchases; a tie
    # goes to reading by purchase


def test_a_program_whose_linked_vouchers_fit_under_the_cap_is_read_by_exam_once_the_rates_say_so():
    f = facts()
    cap = f.unused["Solo"] // 2  # its counters put its one exam slice at twice the cap
    assert program_plans(f, LinkRates(known=frozenset()), frozenset({False}), PAGE, cap)["Solo"].exam_sides == set()
    seen = [PurchaseSeen(p["voucherPurchaseCode"], 1, False, {False: 8}, {False: 5}) for p in SOLO[:4]]
    half_unlinked = LinkRates().observed(f, seen)
    assert program_plans(f, half_unlinked, frozenset({False}), PAGE, cap)["Solo"].exam_sides == {False}


def test_the_worst_of_reading_by_exam_is_its_slices_up_to_the_cap_and_the_rounding_of_sides_read_apart():
    f = facts([purchase(f"M{i}", "Duo", quantity=12, used=4) for i in range(20)])
    plans = program_plans(f, LinkRates(known=frozenset()), frozenset({False}), PAGE, CAP)
    exams = len(TWO_EXAMS["storeExams"])
    rounding = sum(part_pages(f, c, frozenset({True}), PAGE) + part_pages(f, c, frozenset({False}), PAGE)
                   - part_pages(f, c, BOTH_SIDES, PAGE) for c in f.purchases_by_program["Duo"])
    assert plans["Duo"].slices == -(-min(f.unused["Duo"], CAP * exams) // PAGE) + exams + rounding


def test_the_full_read_estimate_adds_whole_sides_deactivated_sides_and_each_programs_plan():
    f = facts()
    rates = LinkRates(known=frozenset())
    plan, every_purchase = full_read_estimate(f, rates, frozenset({False}), PAGE, CAP, frozenset({True}))
    plans = program_plans(f, rates, frozenset({False}), PAGE, CAP, frozenset(), frozenset({True}))
    assert plan == pages(sum(f.used.values()), PAGE) + 1 + round(sum(p.cost for p in plans.values()))
    assert every_purchase == sum(pages(p["quantity"], PAGE) for p in SOLO + DUO)


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


def test_the_counters_give_the_expected_size_of_slices_and_purchases():
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


def test_expected_sizes_never_pass_the_cap_nor_count_vouchers_the_rates_cannot_vouch_for():
    programs = [program("Solo", "S-1")]
    purchases = [purchase("P1", "Solo", quantity=30, used=10), purchase("P2", "Solo", quantity=BULK * 2, used=0)]
    pending = purchase("P3", "Solo", quantity=40, used=0, status="VoucherCreation")
    known = voucher_facts(programs, purchases + [pending])
    unused = Query.of("vouchers", isUsed=False, isActive=True, storeExamCode="S-1")
    assert expected_records(known, unused, cap=50) == 50
    small_linked = LinkRates().observed(known, [PurchaseSeen("P1", 1, False, {False: 20}, {False: 0})])
    small_ones = purchases[0]["quantityRemaining"] + pending["quantityRemaining"]
    assert expected_records(known, unused, rates=small_linked) == small_ones  # nothing seen of bulk ones
    assert expected_records(known, Query.of("vouchers", purchaseCode="P3")) is None  # fewer than its counters
