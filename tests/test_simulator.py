"""The Certiverse simulator honours the API reference, rule by rule.

Expected values come from the tenant's own records, never from copied numbers.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from certiverse_warehouse.simulator import SIZES, SimulatorApp, Tenant, ValidationError, WorldShape, serve
from certiverse_warehouse.simulator.model import DOCUMENTED_PURCHASE_STATUSES

BASE = "http://sim.test:8443"
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
VOUCHER_STATUSES = {"Complete", "VoucherCreation", "Refunded"}


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return Tenant.generate("small", seed=7)


@pytest.fixture(scope="module")
def records(tenant: Tenant) -> dict[str, list[dict[str, Any]]]:
    return {r: tenant.records(r) for r in ("partners", "programs", "purchases", "vouchers")}


def make_client(app: SimulatorApp, base: str = BASE) -> httpx.Client:
    return httpx.Client(transport=app.transport(), base_url=base, headers=AUTH)


@pytest.fixture()
def app(tenant: Tenant) -> SimulatorApp:
    return SimulatorApp(tenant, token=TOKEN, page_size=25, cap=100_000)


@pytest.fixture()
def client(app: SimulatorApp) -> Iterator[httpx.Client]:
    with make_client(app) as c:
        yield c


def fetch_all(client: httpx.Client, path: str, params: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict]]:
    """Every record of a query, following nextLink; also returns the raw pages."""
    pages = [client.get(path, params=params)]
    while True:
        assert pages[-1].status_code == 200, pages[-1].text
        link = pages[-1].json().get("nextLink")
        if not link:
            break
        pages.append(client.get(link))
    bodies = [p.json() for p in pages]
    return [rec for b in bodies for rec in b["data"]], bodies


def no_none(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, dict):
        return all(no_none(v) for v in value.values())
    if isinstance(value, list):
        return all(no_none(v) for v in value)
    return True


def partner_with(records: dict, status: str) -> dict:
    return next(p for p in records["partners"] if _partner_status(p) == status)


def _partner_status(p: dict) -> str:
    return "Archived" if p["isArchived"] else "Active" if p["isActive"] else "Inactive"


# -- authentication and routing ---------------------------------------------

@pytest.mark.parametrize("path", ["/api/vouchers/partners", "/api/vouchers/programs",
                                  "/api/vouchers/purchases?status=Complete", "/api/vouchers?isUsed=true"])
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_requests_without_the_right_bearer_token_get_401(app: SimulatorApp, path: str, headers: dict) -> None:
    status, _, body = app.handle("GET", BASE + path, headers)
    assert status == 401
    assert json.loads(body)["error"]


def test_unknown_path_gets_404(client: httpx.Client) -> None:
    assert client.get("/api/vouchers/nothing").status_code == 404


# -- 400s --------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/vouchers/purchases", "/api/vouchers"])
@pytest.mark.parametrize("params", [{}, {"page": "1"}, {"unknown": "x"}, {"partnerName": ""}])
def test_purchases_and_vouchers_require_a_filter_besides_page(client: httpx.Client, path: str, params: dict) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 400
    assert "filter" in r.json()["message"]


@pytest.mark.parametrize("path,param,value", [
    ("/api/vouchers/partners", "status", "Deleted"),
    ("/api/vouchers/purchases", "status", "Refunded"),
    ("/api/vouchers/purchases", "status", "CompleteVoucherCreation"),
    ("/api/vouchers", "isActive", "yes"),
    ("/api/vouchers", "isUsed", "1"),
    ("/api/vouchers", "recipientEmail", "not-an-email"),
    ("/api/vouchers/purchases", "purchasedByEmail", "a@b"),
])
def test_invalid_filter_values_get_400_naming_the_parameter(client: httpx.Client, path: str, param: str,
                                                             value: str) -> None:
    r = client.get(path, params={param: value})
    assert r.status_code == 400
    assert param in r.json()["message"]


@pytest.mark.parametrize("page", ["0", "-1", "x", "1.5", ""])
def test_page_must_be_a_positive_integer(client: httpx.Client, page: str) -> None:
    r = client.get("/api/vouchers/partners", params={"page": page})
    assert r.status_code == 400
    assert "page" in r.json()["message"]


def test_refunded_status_is_refused_as_filter_yet_refunded_purchases_are_served(
        client: httpx.Client, records: dict) -> None:
    refunded = [p for p in records["purchases"] if p["status"] == "Refunded"]
    assert refunded
    assert client.get("/api/vouchers/purchases", params={"status": "Refunded"}).status_code == 400
    served, _ = fetch_all(client, "/api/vouchers/purchases", {"programName": refunded[0]["programName"]})
    assert refunded[0] in served


# -- POST /api/vouchers/purchases -----------------------------------------------

def _valid_body(records: dict) -> dict[str, Any]:
    zero = next(p for p in records["programs"] if p["isActive"] and p["partners"]["partnerCostPerVoucher"] == 0)
    return {"notes": "batch", "partnerName": partner_with(records, "Active")["name"],
            "programName": zero["name"], "quantity": 5}


@pytest.mark.parametrize("change", [
    {"notes": None}, {"notes": ""}, {"partnerName": None}, {"partnerName": "  "}, {"programName": None},
    {"programName": ""}, {"quantity": None}, {"quantity": 0}, {"quantity": 1001}, {"quantity": "5"},
    {"quantity": 2.5}, {"quantity": True}, {"partnerName": "No Such Partner"},
])
def test_post_purchase_validation_failures_get_400(client: httpx.Client, records: dict, change: dict) -> None:
    body = {k: v for k, v in {**_valid_body(records), **change}.items() if v is not None}
    r = client.post("/api/vouchers/purchases", json=body)
    assert r.status_code == 400
    assert next(iter(change)) in r.json()["message"]


def test_post_purchase_refuses_inactive_partners_inactive_programs_and_priced_programs(
        client: httpx.Client, records: dict) -> None:
    body = _valid_body(records)
    priced = next(p for p in records["programs"] if p["isActive"] and p["partners"]["partnerCostPerVoucher"] > 0)
    retired = next(p for p in records["programs"] if not p["isActive"])
    for change in ({"partnerName": partner_with(records, "Inactive")["name"]},
                   {"partnerName": partner_with(records, "Archived")["name"]},
                   {"partnerName": body["partnerName"].lower()},
                   {"programName": priced["name"]}, {"programName": retired["name"]}):
        r = client.post("/api/vouchers/purchases", json={**body, **change})
        assert r.status_code == 400, change
    bad = client.post("/api/vouchers/purchases", content=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400


def test_post_purchase_creates_a_voucher_creation_purchase_completed_next_day(records: dict) -> None:
    tenant = Tenant.generate("small", seed=7)
    app = SimulatorApp(tenant, token=TOKEN)
    body = _valid_body(records)
    with make_client(app) as client:
        r = client.post("/api/vouchers/purchases", json=body)
        assert r.status_code == 200
        created = r.json()
        assert (created["purchasedByFirstName"], created["purchasedByLastName"]) == ("Certiverse", "API")
        assert created["status"] == "VoucherCreation"
        assert (created["quantity"], created["amountPaid"], created["notes"]) == (body["quantity"], 0, body["notes"])
        code = created["voucherPurchaseCode"]
        assert client.get("/api/vouchers/purchases", params={"purchaseCode": code}).json()["data"] == [created]
        tenant.advance_day()
        done = client.get("/api/vouchers/purchases", params={"purchaseCode": code}).json()["data"][0]
        vouchers, _ = fetch_all(client, "/api/vouchers", {"purchaseCode": code})
    assert done["status"] == "Complete"
    assert len(vouchers) == body["quantity"]


def test_create_purchase_raises_validation_error() -> None:
    tenant = Tenant.generate("small", seed=7)
    with pytest.raises(ValidationError):
        tenant.create_purchase("Acme", "Cloud Fundamentals", 1, "priced program")


# -- filters -------------------------------------------------------------------

def test_partner_name_filter_matches_partially_and_case_insensitively(client: httpx.Client, records: dict) -> None:
    served, _ = fetch_all(client, "/api/vouchers/purchases", {"partnerName": "acme"})
    expected = [p for p in records["purchases"] if "acme" in p["partnerName"].lower()]
    assert served == expected
    assert {"Acme", "Acme Europe"} <= {p["partnerName"] for p in served}


def test_program_name_filter_matches_partially(client: httpx.Client, records: dict) -> None:
    served, _ = fetch_all(client, "/api/vouchers/programs", {"programName": "CLOUD fundamentals"})
    assert {p["name"] for p in served} == {p["name"] for p in records["programs"]
                                           if "cloud fundamentals" in p["name"].lower()}
    assert len(served) >= 2


def test_partner_filters_by_status_and_name(client: httpx.Client, records: dict) -> None:
    for status in ("Active", "Archived", "Inactive"):
        served, _ = fetch_all(client, "/api/vouchers/partners", {"status": status})
        assert served == [p for p in records["partners"] if _partner_status(p) == status]
    served, _ = fetch_all(client, "/api/vouchers/partners", {"partnerName": "GLOBEX"})
    assert {p["name"] for p in served} >= {"Globex", "Globex Training Partners"}


def test_purchase_filters_combine_with_and(client: httpx.Client, records: dict, tenant: Tenant) -> None:
    sample = next(p for p in records["purchases"] if p["status"] == "Complete" and "acme" in p["partnerName"].lower())
    email = tenant.purchases[records["purchases"].index(sample)].email
    served, _ = fetch_all(client, "/api/vouchers/purchases",
                          {"partnerName": "acme", "status": "Complete", "purchasedByEmail": email.upper()})
    expected = [p for i, p in enumerate(records["purchases"])
                if "acme" in p["partnerName"].lower() and p["status"] == "Complete"
                and tenant.purchases[i].email == email]
    assert sample in served and served == expected
    one, _ = fetch_all(client, "/api/vouchers/purchases", {"purchaseCode": sample["voucherPurchaseCode"]})
    assert one == [sample]


def test_voucher_filters_combine_with_and(client: httpx.Client, records: dict) -> None:
    vouchers = records["vouchers"]
    reserved = next(v for v in vouchers if "reservationCode" in v)
    exam = Counter(v.get("storeExamCode") for v in vouchers if v.get("storeExamCode")).most_common(1)[0][0]
    cases = [
        ({"isUsed": "true", "isActive": "true"}, lambda v: v["isUsed"] and v["isActive"]),
        ({"isActive": "false"}, lambda v: not v["isActive"]),
        ({"storeExamCode": exam, "isUsed": "false"}, lambda v: v.get("storeExamCode") == exam and not v["isUsed"]),
        ({"voucherCode": vouchers[5]["voucherCode"]}, lambda v: v is vouchers[5]),
        ({"reservationCode": reserved["reservationCode"]}, lambda v: v is reserved),
        ({"recipientEmail": reserved["recipientEmail"]},
         lambda v: v.get("recipientEmail") == reserved["recipientEmail"]),
        ({"purchaseCode": reserved["voucherPurchaseCode"], "isUsed": "false"},
         lambda v: v["voucherPurchaseCode"] == reserved["voucherPurchaseCode"] and not v["isUsed"]),
        ({"storeExamCode": "NOPE-1"}, lambda v: False),
        ({"voucherCode": "NOPE-0000000000"}, lambda v: False),
        ({"reservationCode": "RSV-0000000000"}, lambda v: False),
    ]
    for params, keep in cases:
        served, _ = fetch_all(client, "/api/vouchers", params)
        assert served == [v for v in vouchers if keep(v)], params


# -- the 10,000-record cap -----------------------------------------------------

def _big_query(records: dict) -> tuple[dict[str, str], int]:
    return {"isActive": "true"}, sum(v["isActive"] for v in records["vouchers"])


def test_cap_first_mode_refuses_every_page_of_a_query_over_the_cap(tenant: Tenant, records: dict) -> None:
    params, total = _big_query(records)
    app = SimulatorApp(tenant, token=TOKEN, page_size=20, cap=total - 1, cap_mode="first")
    with make_client(app) as client:
        for page in ("1", "2"):
            assert client.get("/api/vouchers", params={**params, "page": page}).status_code == 422
        app.cap = total
        served, _ = fetch_all(client, "/api/vouchers", params)
    assert len(served) == total


def test_cap_late_mode_serves_pages_below_the_cap_then_refuses(tenant: Tenant, records: dict) -> None:
    params, total = _big_query(records)
    app = SimulatorApp(tenant, token=TOKEN, page_size=20, cap=50, cap_mode="late")
    with make_client(app) as client:
        statuses: list[int] = []
        url = ""
        r = client.get("/api/vouchers", params=params)
        while r.status_code == 200:
            statuses.append(r.status_code)
            url = r.json()["nextLink"]
            r = client.get(url)
    assert total > 50 and r.status_code == 422
    assert len(statuses) == -(-50 // 20)  # pages starting at 0, 20, 40
    assert dict(parse_qsl(urlsplit(url).query))["page"] == str(len(statuses) + 1)


# -- paging --------------------------------------------------------------------

@pytest.mark.parametrize("style,last", [("absent", ...), ("null", None), ("empty", "")])
def test_paging_returns_every_record_once_with_each_last_page_style(tenant: Tenant, records: dict,
                                                                     style: str, last: Any) -> None:
    app = SimulatorApp(tenant, token=TOKEN, page_size=7, nextlink_last=style)
    with make_client(app) as client:
        served, bodies = fetch_all(client, "/api/vouchers/purchases", {"partnerName": "a"})
    expected = [p for p in records["purchases"] if "a" in p["partnerName"].lower()]
    assert served == expected
    assert len(bodies) == -(-len(expected) // 7)
    assert bodies[-1].get("nextLink", ...) == last
    assert all(b["nextLink"] for b in bodies[:-1])


def test_mixed_last_page_style_varies_between_queries(tenant: Tenant, records: dict) -> None:
    app = SimulatorApp(tenant, token=TOKEN, nextlink_last="mixed")
    seen = set()
    with make_client(app) as client:
        for partner in records["partners"]:
            _, bodies = fetch_all(client, "/api/vouchers/purchases", {"partnerName": partner["name"]})
            seen.add(repr(bodies[-1].get("nextLink", ...)))
    assert seen == {repr(...), "None", "''"}


def test_next_link_keeps_scheme_host_port_and_filters(tenant: Tenant) -> None:
    params = {"partnerName": "a", "programName": "e", "status": "Complete"}
    for shuffle in (True, False):
        app = SimulatorApp(tenant, token=TOKEN, page_size=2, shuffle_params=shuffle)
        with make_client(app, "https://other-host.test:9999") as client:
            links = [client.get("/api/vouchers/purchases", params={**params, "page": str(n)}).json()["nextLink"]
                     for n in range(1, 6)]
        orders = set()
        for n, link in enumerate(links, start=1):
            parts = urlsplit(link)
            assert (parts.scheme, parts.netloc) == ("https", "other-host.test:9999")
            assert parts.path == "/api/vouchers/purchases"
            assert parse_qsl(parts.query) and dict(parse_qsl(parts.query)) == {**params, "page": str(n + 1)}
            orders.add(tuple(k for k, _ in parse_qsl(parts.query)))
        assert (len(orders) > 1) == shuffle


def test_served_records_omit_null_fields(client: httpx.Client, records: dict) -> None:
    served: dict[str, dict[str, Any]] = {}
    for path, params in [("/api/vouchers/partners", {}), ("/api/vouchers/programs", {}),
                         ("/api/vouchers", {"isActive": "true"}), ("/api/vouchers", {"isActive": "false"})]:
        served.update((rec["id"], rec) for rec in fetch_all(client, path, params)[0])
    for program in records["programs"]:
        served.update((rec["id"], rec) for rec in
                      fetch_all(client, "/api/vouchers/purchases", {"programName": program["name"]})[0])
    assert len(served) == sum(len(v) for v in records.values())
    assert all(no_none(rec) for rec in served.values())
    vouchers = records["vouchers"]
    for optional in ("assignedDateUtc", "recipientEmail", "reservationCode", "storeExamCode", "usedBy"):
        assert 0 < sum(optional in v for v in vouchers) < len(vouchers), optional


# -- faults --------------------------------------------------------------------

def test_faults_appear_at_their_configured_rates(tenant: Tenant) -> None:
    rates = {"500": 0.1, "429": 0.05, "truncate": 0.1}
    app = SimulatorApp(tenant, token=TOKEN, fault_rate_500=rates["500"], fault_rate_429=rates["429"],
                       fault_rate_truncate=rates["truncate"], retry_after=3, seed=5)
    seen: Counter[str] = Counter()
    n = 2000
    with make_client(app) as client:
        for page in range(1, n + 1):  # distinct URLs: no per-URL streak cap involved
            r = client.get("/api/vouchers/partners", params={"page": str(page)})
            if r.status_code == 429:
                assert r.headers["Retry-After"] == "3"
            if r.status_code == 200:
                try:
                    r.json()
                    continue
                except ValueError:
                    seen["truncate"] += 1
                    continue
            seen[str(r.status_code)] += 1
    for kind, rate in rates.items():
        assert abs(seen[kind] - rate * n) < 0.3 * rate * n, (kind, seen)
    assert seen == app.faults
    assert app.stats[("/api/vouchers/partners", 500)] == seen["500"]


def test_consecutive_faults_per_url_are_capped(tenant: Tenant) -> None:
    app = SimulatorApp(tenant, token=TOKEN, fault_rate_500=0.45, fault_rate_429=0.45, seed=1)
    url = BASE + "/api/vouchers/partners?partnerName=acme"
    streak = longest = 0
    for _ in range(300):
        status, _, _ = app.handle("GET", url, AUTH)
        streak = streak + 1 if status in (429, 500) else 0
        longest = max(longest, streak)
    assert longest == app.max_consecutive_faults


def test_latency_is_added_before_answering(tenant: Tenant) -> None:
    app = SimulatorApp(tenant, token=TOKEN, latency_ms=30)
    started = time.perf_counter()
    app.handle("GET", BASE + "/api/vouchers/partners", AUTH)
    assert time.perf_counter() - started >= 0.03


def test_stats_count_requests_by_path_and_status(app: SimulatorApp, client: httpx.Client) -> None:
    client.get("/api/vouchers/partners")
    client.get("/api/vouchers/partners")
    client.get("/api/vouchers")
    assert app.stats == Counter({("/api/vouchers/partners", 200): 2, ("/api/vouchers", 400): 1})


# -- tenant data ---------------------------------------------------------------

def test_generation_is_deterministic_per_seed_and_scales() -> None:
    a, b, c = (Tenant.generate("small", seed=s) for s in (3, 3, 4))
    for resource in ("partners", "programs", "purchases", "vouchers"):
        assert a.records(resource) == b.records(resource)
        assert a.records(resource) != c.records(resource)
    assert len(Tenant.generate("small", seed=3, scale=2).purchases) == round(SIZES["small"]["purchases"] * 2)


def test_advance_day_is_deterministic() -> None:
    a, b = Tenant.generate("small", seed=3), Tenant.generate("small", seed=3)
    assert [a.advance_day() for _ in range(3)] == [b.advance_day() for _ in range(3)]
    assert a.records("vouchers") == b.records("vouchers") and a.today == b.today


def test_purchases_cover_every_status_and_their_counters_hold(records: dict) -> None:
    purchases, vouchers = records["purchases"], records["vouchers"]
    statuses = Counter(p["status"] for p in purchases)
    assert set(statuses) == set(DOCUMENTED_PURCHASE_STATUSES) | {"Refunded"}
    assert statuses["Complete"] / len(purchases) > 0.8
    per_purchase = Counter(v["voucherPurchaseCode"] for v in vouchers)
    used = Counter(v["voucherPurchaseCode"] for v in vouchers if v["isUsed"])
    lagging = 0
    for p in purchases:
        code, n = p["voucherPurchaseCode"], per_purchase[p["voucherPurchaseCode"]]
        if p["status"] == "Complete":
            assert n == p["quantity"]
        elif p["status"] == "VoucherCreation":
            assert n < p["quantity"]
        elif p["status"] != "Refunded":
            assert n == p["quantityUsed"] == p["quantityRemaining"] == 0
            continue
        assert p["quantityRemaining"] == p["quantity"] - p["quantityUsed"]
        assert 0 <= used[code] - p["quantityUsed"] <= 2
        lagging += used[code] != p["quantityUsed"]
    assert 0 < lagging <= 0.05 * statuses["Complete"]
    refunded = {p["voucherPurchaseCode"] for p in purchases if p["status"] == "Refunded"}
    assert all(not v["isActive"] for v in vouchers if v["voucherPurchaseCode"] in refunded)


def test_vouchers_show_every_state_with_coherent_dates(tenant: Tenant, records: dict) -> None:
    vouchers = records["vouchers"]
    now = tenant.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    states: Counter[str] = Counter()
    for v in vouchers:
        if v["isUsed"]:
            states["used"] += 1
            assert v["assignedDateUtc"] < v["usedBy"]["usedDateUtc"] < v["expirationDateUtc"]
            assert v["usedBy"]["usedDateUtc"] <= now
        elif v["expirationDateUtc"] < now:
            states["expired unused"] += 1
        elif "reservationCode" in v:
            states["reserved"] += 1
        elif "recipientEmail" in v:
            states["assigned"] += 1
        else:
            states["unassigned"] += 1
        states["inactive"] += not v["isActive"]
    assert all(states[s] for s in ("used", "expired unused", "reserved", "assigned", "unassigned", "inactive"))
    assert 0.03 < sum("storeExamCode" not in v for v in vouchers) / len(vouchers) < 0.3
    assert len({v["voucherCode"] for v in vouchers}) == len({v["id"] for v in vouchers}) == len(vouchers)


def test_programs_and_partners_are_varied(records: dict) -> None:
    programs, partners = records["programs"], records["partners"]
    zero = [p for p in programs if p["isActive"] and p["partners"]["partnerCostPerVoucher"] == 0]
    assert len(zero) >= 2
    assert {"Acme", "Acme Europe", "Globex", "Globex Training Partners"} <= {p["name"] for p in partners}
    assert {_partner_status(p) for p in partners} == {"Active", "Archived", "Inactive"}
    assert {(p["isActive"], p["isArchived"], p["isInactive"]) for p in programs} >= {
        (True, False, False), (False, True, False), (False, False, True)}
    codes = [e["code"] for p in programs for e in p["storeExams"]]
    assert len(codes) == len(set(codes))
    assert all(1 <= len(p["users"]) <= 5 for p in partners)


# -- advance_day -----------------------------------------------------------------

def _diff(before: dict, after: dict, now_before: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    old_p = {p["id"]: p for p in before["purchases"]}
    for p in after["purchases"]:
        prev = old_p.get(p["id"])
        if prev is None:
            seen["purchases_created"] += 1
            continue
        if prev["status"] != p["status"]:
            seen["purchases_completed" if p["status"] == "Complete" else "purchases_abandoned"] += 1
        seen["purchase_counters_updated"] += prev["quantityUsed"] != p["quantityUsed"]
    seen["vouchers_created"] = len(after["vouchers"]) - len(before["vouchers"])
    for b, a in zip(before["vouchers"], after["vouchers"]):
        assert a["id"] == b["id"]  # stable order
        seen["vouchers_assigned"] += "recipientEmail" in a and "recipientEmail" not in b
        seen["vouchers_reserved"] += a.get("reservationCode") != b.get("reservationCode")
        seen["reservations_cancelled"] += (b.get("reservationStatus"), a.get("reservationStatus")) == (
            "Scheduled", "Cancelled")
        seen["vouchers_used"] += a["isUsed"] and not b["isUsed"]
        seen["vouchers_deactivated"] += b["isActive"] and not a["isActive"]
        seen["vouchers_reactivated"] += a["isActive"] and not b["isActive"]
        extended = a["expirationDateUtc"] > b["expirationDateUtc"]
        seen["vouchers_extended"] += extended
        seen["vouchers_extended_settled"] += extended and b["expirationDateUtc"] < now_before
    return seen


def test_advance_day_counts_match_the_observed_changes() -> None:
    tenant = Tenant.generate("small", seed=11)
    totals: Counter[str] = Counter()
    for _ in range(3):
        before = {r: tenant.records(r) for r in ("purchases", "vouchers")}
        now_before, version = tenant.now().strftime("%Y-%m-%dT%H:%M:%SZ"), tenant.version
        counts = tenant.advance_day()
        after = {r: tenant.records(r) for r in ("purchases", "vouchers")}
        assert tenant.version > version
        assert _diff(before, after, now_before) == Counter(counts)
        totals.update(counts)
    for kind in ("purchases_created", "purchases_completed", "vouchers_created", "vouchers_assigned",
                 "vouchers_reserved", "vouchers_used", "vouchers_deactivated", "vouchers_reactivated",
                 "vouchers_extended", "vouchers_extended_settled", "purchase_counters_updated"):
        assert totals[kind] > 0, kind


def test_advance_day_keeps_counters_consistent() -> None:
    tenant = Tenant.generate("small", seed=11)

    def lag() -> dict[str, int]:
        used = Counter(v["voucherPurchaseCode"] for v in tenant.records("vouchers") if v["isUsed"])
        return {p["voucherPurchaseCode"]: used[p["voucherPurchaseCode"]] - p["quantityUsed"]
                for p in tenant.records("purchases") if p["status"] in VOUCHER_STATUSES}

    first = lag()
    for _ in range(3):
        tenant.advance_day()
    later = lag()
    assert {c: later[c] for c in first} == first
    assert all(later[c] == 0 for c in later.keys() - first.keys())
    for p in tenant.records("purchases"):
        if p["status"] in VOUCHER_STATUSES:
            assert p["quantityRemaining"] == p["quantity"] - p["quantityUsed"]


# -- real HTTP -----------------------------------------------------------------

def test_serve_answers_over_real_http_on_loopback(tenant: Tenant) -> None:
    app = SimulatorApp(tenant, token=TOKEN, page_size=5)
    with serve(app) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=base_url, headers=AUTH) as client:
            r = client.get("/api/vouchers/partners")
            assert r.status_code == 200 and r.headers["content-type"] == "application/json"
            assert r.json()["nextLink"].startswith(base_url + "/api/vouchers/partners?")
            served, _ = fetch_all(client, "/api/vouchers/partners", {})
            assert len(served) == len(tenant.partners)
            assert httpx.get(base_url + "/api/vouchers/partners").status_code == 401
    with pytest.raises(httpx.TransportError):
        httpx.get(base_url + "/api/vouchers/partners", headers=AUTH, timeout=1)


def test_serve_refuses_non_loopback_hosts(tenant: Tenant) -> None:
    with pytest.raises(ValueError), serve(SimulatorApp(tenant), host="0.0.0.0"):
        pass


# -- world shapes ----------------------------------------------------------------

def _exam_counts(tenant: Tenant) -> dict[str, int]:
    return {p.name: len(p.exams) for p in tenant.programs}


def _unlinked_share(records: list[dict[str, Any]], vouchers_of: set[str] | None = None) -> float:
    chosen = [v for v in records if vouchers_of is None or v["voucherPurchaseCode"] in vouchers_of]
    return sum("storeExamCode" not in v for v in chosen) / len(chosen)


def test_the_default_shape_is_the_tenant_as_it_always_was() -> None:
    a, b = Tenant.generate("small", seed=3), Tenant.generate("small", seed=3, shape=WorldShape())
    for resource in ("partners", "programs", "purchases", "vouchers"):
        assert a.records(resource) == b.records(resource)
    assert a.advance_day() == b.advance_day()


def test_exam_links_follow_the_shape() -> None:
    base = WorldShape(exam_counts=(3,), exam_weights=(1,))
    at_issuance = Tenant.generate("small", seed=3, shape=base.with_(link_when="issuance"))
    when_reserved = Tenant.generate("small", seed=3, shape=base.with_(exam_at_issuance=0.0))
    never = Tenant.generate("small", seed=3, shape=base.with_(exam_at_issuance=0.0, link_when="never"))
    assert _unlinked_share(at_issuance.records("vouchers")) == 0
    never_records = never.records("vouchers")
    assert _unlinked_share(never_records) == 1
    reserved_records = when_reserved.records("vouchers")
    assert all("storeExamCode" in v for v in reserved_records if v["isUsed"] or "reservationCode" in v)
    assert any("storeExamCode" not in v for v in reserved_records)
    used_only = Tenant.generate("small", seed=3, shape=base.with_(exam_at_issuance=0.0, link_when="used"))
    used_records = used_only.records("vouchers")
    assert all("storeExamCode" in v for v in used_records if v["isUsed"])
    assert any("storeExamCode" not in v for v in used_records if "reservationCode" in v and not v["isUsed"])


def test_single_exam_programs_can_leave_vouchers_unlinked() -> None:
    shape = WorldShape(exam_counts=(1,), exam_weights=(1,), single_exam_linked=False, link_when="never")
    tenant = Tenant.generate("small", seed=3, shape=shape)
    assert set(_exam_counts(tenant).values()) == {1}
    assert _unlinked_share(tenant.records("vouchers")) == 1


def test_exams_per_program_and_purchase_sizes_follow_the_shape() -> None:
    shape = WorldShape(exam_counts=(5, 6), exam_weights=(1, 1), purchase_scale=4.0)
    wide, base = Tenant.generate("small", seed=3, shape=shape), Tenant.generate("small", seed=3)
    assert set(_exam_counts(wide).values()) <= {5, 6}
    quantities = [p.quantity for p in wide.purchases]
    assert max(quantities) <= 1000 and sum(quantities) > 2 * sum(p.quantity for p in base.purchases)


def test_bulk_purchases_can_be_drawn_close_to_the_cap_and_fewer_purchases_drawn() -> None:
    shape = WorldShape(purchase_count=0.5, big_share=0.3, big_range=(800, 1000))
    tenant, base = Tenant.generate("small", seed=3, shape=shape), Tenant.generate("small", seed=3)
    assert len(tenant.purchases) == round(len(base.purchases) * 0.5)
    bulk = [p.quantity for p in tenant.purchases if p.quantity >= 50]
    assert bulk and all(800 <= q <= 1000 for q in bulk)


def test_vouchers_can_be_issued_unlinked_one_by_one_or_for_bulk_purchases() -> None:
    linked = WorldShape(exam_at_issuance=1.0, link_when="never")
    third = Tenant.generate("small", seed=3, shape=linked.with_(unlinked_vouchers=0.33))
    assert abs(_unlinked_share(third.records("vouchers")) - 0.33) < 0.03
    bulk = Tenant.generate("small", seed=3, shape=linked.with_(unlinked_from_quantity=50))
    big = {p.code for p in bulk.purchases if p.quantity >= 50}
    small = {p.code for p in bulk.purchases if p.quantity < 50}
    assert _unlinked_share(bulk.records("vouchers"), big) == 1
    assert _unlinked_share(bulk.records("vouchers"), small) == 0


def test_a_partner_in_an_undocumented_state_is_listed_but_no_status_filter_returns_it() -> None:
    tenant = Tenant.generate("small", seed=3, shape=WorldShape(odd_partner_states=1))
    (odd,) = [p.name for p in tenant.partners if p.status not in ("Active", "Archived", "Inactive")]
    with make_client(SimulatorApp(tenant, token=TOKEN)) as client:
        assert odd in {p["name"] for p in client.get("/api/vouchers/partners").json()["data"]}
        for status in ("Active", "Archived", "Inactive"):
            found = client.get("/api/vouchers/partners", params={"status": status}).json()["data"]
            assert odd not in {p["name"] for p in found}


def test_a_retired_program_is_not_listed_but_its_purchases_are() -> None:
    tenant = Tenant.generate("small", seed=3, shape=WorldShape(retired_programs=1))
    (retired,) = [p for p in tenant.programs if p.status == "Retired"]
    with make_client(SimulatorApp(tenant, token=TOKEN, page_size=1000)) as client:
        assert retired.name not in {p["name"] for p in client.get("/api/vouchers/programs").json()["data"]}
        partner = tenant.partners[tenant.purchases[retired.purchases[0]].partner].name
        listed = client.get("/api/vouchers/purchases", params={"partnerName": partner}).json()["data"]
        assert retired.name in {p["programName"] for p in listed}


def test_a_young_disengaged_tenant_has_more_open_vouchers() -> None:
    def open_share(tenant: Tenant) -> float:
        now = tenant.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        vouchers = tenant.records("vouchers")
        return sum(not v["isUsed"] and v["isActive"] and v["expirationDateUtc"] >= now for v in vouchers) / len(vouchers)

    young = Tenant.generate("small", seed=3, shape=WorldShape(history_days=300, engagement=0.3))
    assert open_share(young) > 2 * open_share(Tenant.generate("small", seed=3))


def test_every_answer_carries_the_simulated_clock_as_its_date_header(tenant: Tenant) -> None:
    import email.utils

    shape = WorldShape(start_day=dt.date(2025, 3, 9))
    months_away = Tenant.generate("small", seed=3, shape=shape)
    for t in (tenant, months_away):
        status, headers, _ = SimulatorApp(t, token=TOKEN).handle("GET", BASE + "/api/vouchers/partners", AUTH)
        assert status == 200 and email.utils.parsedate_to_datetime(headers["Date"]) == t.now()
    assert months_away.today == shape.start_day
    with make_client(SimulatorApp(months_away, token=TOKEN)) as client, serve(SimulatorApp(months_away)) as url:
        assert client.get("/api/vouchers/nothing").headers["Date"] == email.utils.format_datetime(
            months_away.now(), usegmt=True)
        over_http = httpx.get(url + "/api/vouchers/partners", headers={"Authorization": "Bearer sim-token"})
        assert over_http.headers.get_list("Date") == [email.utils.format_datetime(months_away.now(), usegmt=True)]


@pytest.mark.parametrize("order", ["newest_first", "shuffled"])
def test_records_come_back_in_the_shapes_order_each_once(tenant: Tenant, records: dict, order: str) -> None:
    app = SimulatorApp(tenant, token=TOKEN, page_size=25, order=order)
    with make_client(app) as client:
        served, _ = fetch_all(client, "/api/vouchers", {"isUsed": "false"})
    expected = [v["id"] for v in records["vouchers"] if not v["isUsed"]]
    got = [v["id"] for v in served]
    assert sorted(got) == sorted(expected) and got != expected
    if order == "newest_first":
        assert got == expected[::-1]


def test_the_page_size_and_cap_come_from_the_shape() -> None:
    tenant = Tenant.generate("small", seed=3, shape=WorldShape(page_size=7, cap=50))
    app = SimulatorApp(tenant, token=TOKEN)
    with make_client(app) as client:
        assert len(client.get("/api/vouchers/partners").json()["data"]) == min(7, len(tenant.partners))
        assert client.get("/api/vouchers", params={"isUsed": "true"}).status_code == 422


def test_activity_between_pages_shifts_a_page_number_read_so_records_slip_past() -> None:
    tenant = Tenant.generate("small", seed=3, shape=WorldShape(activity_every_pages=1))
    before = {v["id"] for v in tenant.records("vouchers") if not v["isUsed"] and v["isActive"]}
    app = SimulatorApp(tenant, token=TOKEN, page_size=25)
    with make_client(app) as client:
        served, _ = fetch_all(client, "/api/vouchers", {"isUsed": "false", "isActive": "true"})
    still = {v["id"] for v in tenant.records("vouchers") if not v["isUsed"] and v["isActive"]}
    assert app.activity["vouchers_used"] > 0 and app.activity["vouchers_deactivated"] > 0
    assert still < before
    assert still - {v["id"] for v in served}, "no record slipped past: the activity did not shift the pages"
