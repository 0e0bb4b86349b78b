"""Unit tests of the catalog: purchases listed per program or partner, partial names, splits (fake API)."""

from __future__ import annotations

from collections import Counter

from certiverse_warehouse.sources.certiverse.catalog import (
    PurchaseSplit,
    expected_vouchers,
    split_by_containment,
    split_partners,
)
from certiverse_warehouse.sources.certiverse.client import Query
from tests.fakes import FakeApi, catalog, program, purchase

PARTNERS = [{"id": f"pa{i}", "name": n} for i, n in enumerate(("Acme", "Acme Europe", "Globex", "Initech"))]
PROGRAMS = [program("Cloud", "C-1"), program("Data", "D-1")]
PURCHASES = [purchase(f"P{i}", ("Cloud", "Data")[i % 2], 3, partner=PARTNERS[i % 4]["name"]) for i in range(12)]


def test_purchases_are_listed_per_program_when_programs_are_fewer_and_each_comes_once():
    api = FakeApi({"partners": PARTNERS, "programs": PROGRAMS, "purchases": PURCHASES}, page_size=4)
    cat = catalog(api)
    assert Counter(p["voucherPurchaseCode"] for p in cat.purchases()) == Counter(
        p["voucherPurchaseCode"] for p in PURCHASES)
    assert api.queries("purchases") == {Query.of("purchases", programName=p["name"]) for p in PROGRAMS}
    pages = list(cat.purchase_pages())
    assert sum(len(p) for p in pages) == len(PURCHASES) and "id" in pages[0][0]  # whole records for the resource


def test_a_name_inside_another_is_read_only_if_the_shorter_one_did_not_return_it():
    assert split_by_containment(["Acme Europe", "Acme", "Globex"]) == (["Acme", "Globex"], ["Acme Europe"])
    programs = [program(f"Program {i}", f"E{i}") for i in range(len(PARTNERS) + 1)]
    api = FakeApi({"partners": PARTNERS, "programs": programs, "purchases": PURCHASES}, page_size=4)
    catalog(api).purchases()
    assert Query.of("purchases", partnerName="Acme Europe") not in api.queries("purchases")  # "Acme" covered it
    assert Query.of("purchases", partnerName="Acme") in api.queries("purchases")


def test_a_program_over_the_cap_is_split_by_partner_and_nothing_below_that():
    split = PurchaseSplit("programName", "partnerName", ["Acme", "Globex"])
    over = Query.of("purchases", programName="Cloud")
    assert split(over) == [over.narrowed(partnerName="Acme"), over.narrowed(partnerName="Globex")]
    assert split(over.narrowed(partnerName="Acme")) is None
    api = FakeApi({"partners": PARTNERS, "programs": PROGRAMS, "purchases": PURCHASES}, page_size=2, cap=4)
    assert len(catalog(api).purchases()) == len(PURCHASES)


def test_partners_over_the_cap_split_by_their_three_states():
    assert split_partners(Query("partners")) == [Query.of("partners", status=s) for s in ("Active", "Archived",
                                                                                          "Inactive")]
    assert split_partners(Query.of("partners", status="Active")) is None


def test_expected_vouchers_are_told_by_the_status_and_counters():
    assert expected_vouchers(purchase("A", "Cloud", 5)) == 5
    assert expected_vouchers(dict(purchase("B", "Cloud", 5, status="CheckoutFailed"), quantityRemaining=0)) == 0
    assert expected_vouchers(purchase("C", "Cloud", 5, status="VoucherCreation")) is None
    assert expected_vouchers(purchase("D", "Cloud", 5, status="Refunded")) is None


# -- a partition must cover everything -----------------------------------------------------------

def _partner(i: int, name: str, status: str) -> dict:
    # ``status`` only for the fake's filter: the API filters partners by status but does not send it.
    return {"id": f"pa{i}", "name": name, "status": status}


LISTED = [_partner(i, f"Partner {i}", ("Active", "Archived", "Inactive")[i % 3]) for i in range(6)]
SUSPENDED = _partner(99, "Suspended Co", "Suspended")  # a state outside the documented three


def test_partners_over_the_cap_read_by_status_are_checked_against_the_partners_purchases_name(caplog):
    purchases = [purchase(f"P{i}", ("Cloud", "Data")[i % 2], 3, partner=p["name"])
                 for i, p in enumerate(LISTED + [SUSPENDED])]  # each program's purchases under the cap
    api = FakeApi({"partners": LISTED + [SUSPENDED], "programs": PROGRAMS, "purchases": purchases}, cap=4)
    partners = catalog(api, cap=4).partners()
    assert Counter(p["id"] for p in partners) == Counter(p["id"] for p in LISTED + [SUSPENDED])
    assert Query.of("partners", partnerName="Suspended Co") in api.queries("partners")
    assert "missed 1 partners the purchases name" in caplog.text


def test_a_partner_the_purchases_name_that_the_api_does_not_list_is_said_in_the_log(caplog):
    purchases = [purchase("P0", "Cloud", 3, partner="Ghost Ltd")]
    api = FakeApi({"partners": LISTED, "programs": PROGRAMS, "purchases": purchases}, cap=4)
    assert len(catalog(api, cap=4).partners()) == len(LISTED)
    assert "1 partners the purchases name are not listed by the API: Ghost Ltd" in caplog.text


def test_purchases_of_a_partner_the_statuses_missed_in_a_program_split_by_partner_are_read_by_partner():
    big = [purchase(f"C{i}", "Cloud", 3, partner=LISTED[i % len(LISTED)]["name"]) for i in range(6)]
    hidden = [purchase(f"H{i}", "Cloud", 3, partner="Suspended Co") for i in range(2)]
    elsewhere = [purchase("D0", "Data", 3, partner="Suspended Co")]
    api = FakeApi({"partners": LISTED + [SUSPENDED], "programs": PROGRAMS, "purchases": big + hidden + elsewhere},
                  cap=5)
    listed = catalog(api, cap=5).purchases()
    assert Counter(p["voucherPurchaseCode"] for p in listed) == Counter(
        p["voucherPurchaseCode"] for p in big + hidden + elsewhere)
    assert Query.of("purchases", partnerName="Suspended Co") in api.queries("purchases")


def test_purchases_the_warehouse_holds_that_the_listing_missed_are_read_by_code(caplog):
    stray = purchase("X0", "Retired Program", 3)  # its program is not in the program list
    api = FakeApi({"partners": PARTNERS, "programs": PROGRAMS, "purchases": PURCHASES + [stray]}, page_size=4)
    gone = "Z9"
    cat = catalog(api)
    pages = list(cat.purchase_pages(frozenset({"X0", gone, PURCHASES[0]["voucherPurchaseCode"]})))
    assert Counter(p["voucherPurchaseCode"] for page in pages for p in page) == Counter(
        p["voucherPurchaseCode"] for p in PURCHASES + [stray])
    assert "X0" in {p["voucherPurchaseCode"] for p in cat.purchases()}  # the plans see it too
    assert {q for q in api.queries("purchases") if "purchaseCode" in q.params} == {
        Query.of("purchases", purchaseCode="X0"), Query.of("purchases", purchaseCode=gone)}
    assert "1 purchases the warehouse holds were not listed by name; read by code: X0" in caplog.text
