"""The simulator's knobs for habits the reference leaves open: each does what its name says, and nothing else."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from certiverse_warehouse.simulator import SimulatorApp, Tenant
from certiverse_warehouse.simulator.app import NEXTLINK_FORMS
from certiverse_warehouse.simulator.data import RESOURCES
from certiverse_warehouse.simulator.habits import BOOL_FIELDS, HABITS, INT_FIELDS, TIMESTAMP_FIELDS, meaning

BASE = "http://sim.test:8443"
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PATHS = {"partners": "/api/vouchers/partners", "programs": "/api/vouchers/programs"}
FILTERED = {"purchases": ("/api/vouchers/purchases", {"programName": "a"}),
            "vouchers": ("/api/vouchers", {"isActive": "true"})}


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return Tenant.generate("small", seed=7)


def get(app: SimulatorApp, url: str, params: dict | None = None) -> httpx.Response:
    with httpx.Client(transport=app.transport(), base_url=BASE, headers=AUTH) as client:
        return client.get(url, params=params)


def body(response: httpx.Response) -> dict:
    return json.loads(response.content.decode("utf-8-sig"))


def records(app: SimulatorApp, resource: str) -> list[dict]:
    path, params = FILTERED.get(resource, (PATHS.get(resource), {}))
    return body(get(app, path, params))["data"]


def scalars(value, name=""):
    """(field name, value) of every scalar in a record, nested objects and lists included."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from scalars(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from scalars(v, name)
    else:
        yield name, value


def test_without_habits_every_answer_is_the_reference(tenant):
    plain, knobs_off = SimulatorApp(tenant, token=TOKEN), SimulatorApp(tenant, token=TOKEN, habits=())
    for resource in RESOURCES:
        assert get(plain, *FILTERED.get(resource, (PATHS.get(resource), None))).content == get(
            knobs_off, *FILTERED.get(resource, (PATHS.get(resource), None))).content


def test_form_habits_change_the_form_of_values_not_their_meaning(tenant):
    forms = ("bool_strings", "number_strings", "timestamp_forms", "whitespace", "bom")
    app = SimulatorApp(tenant, token=TOKEN, habits=forms, page_size=500, cap=100_000)
    raw = get(app, "/api/vouchers/purchases", {"programName": "a"}).content
    assert raw.startswith(b"\xef\xbb\xbf\r\n") and raw.endswith(b"\n\t ")
    sent = [v for resource in RESOURCES for record in records(app, resource) for v in scalars(record)]
    assert any(n in BOOL_FIELDS and isinstance(v, (str, int)) and not isinstance(v, bool) for n, v in sent)
    assert any(n in INT_FIELDS and isinstance(v, str) for n, v in sent)
    assert any(n in TIMESTAMP_FIELDS and not str(v).endswith("Z") for n, v in sent)
    assert any(isinstance(v, str) and v != v.strip() for _, v in sent)
    assert any(isinstance(v, str) and v.startswith("\ufeff") for _, v in sent)
    # Well-formed values stay among them, and a record is sent the same way on every request.
    assert any(n in BOOL_FIELDS and isinstance(v, bool) for n, v in sent)
    assert records(app, "vouchers") == records(app, "vouchers")
    assert all(meaning(r, rec, forms) == rec for r in RESOURCES for rec in tenant.records(r)[:50])


def test_meaning_habits_add_nulls_unknown_values_and_new_fields_and_say_so(tenant):
    app = SimulatorApp(tenant, token=TOKEN, habits=("nulls", "unknown_enums", "new_fields"), page_size=500,
                       cap=100_000)
    vouchers = records(app, "vouchers")
    assert all(v.get("loyaltyTier") and "meta" in v for v in vouchers)
    assert any(v.get("usedBy", ...) is None for v in vouchers)  # omitted fields sent as null
    purchases = tenant.records("purchases")
    meant = [meaning("purchases", p, app.habits.names) for p in purchases]
    assert any(m["notes"] is None for m in meant) and any("purchasedByLastName" not in m for m in meant)
    assert {m["status"] for m in meant} - {p["status"] for p in purchases} == {"CheckoutAbandoned"}
    by_id = {r["id"]: r for r in records(app, "purchases")}
    assert all(by_id[m["id"]] == m for m in meant if m["id"] in by_id)


def test_unknown_habits_are_refused():
    with pytest.raises(ValueError, match="unknown habits"):
        SimulatorApp(Tenant.generate("small", seed=7), habits=("tabs_in_json",))
    assert len(HABITS) == len(set(HABITS))


@pytest.mark.parametrize("form", NEXTLINK_FORMS)
def test_each_nextlink_form_still_leads_a_client_that_resolves_it_to_the_next_page(tenant, form):
    app = SimulatorApp(tenant, token=TOKEN, page_size=10, cap=100_000, nextlink_form=form)
    url, ids = f"{BASE}/api/vouchers?isActive=true", []
    while url:
        page = body(get(app, url))
        ids += [r["id"] for r in page["data"]]
        link = page.get("nextLink")
        if link and form != "unencoded":
            assert urlsplit(urljoin(url, link)).netloc == urlsplit(BASE).netloc
        url = urljoin(url, link) if link else None
    assert ids == [r["id"] for r in records(SimulatorApp(tenant, token=TOKEN, page_size=10_000, cap=100_000),
                                             "vouchers")]


def test_links_can_name_another_origin(tenant):
    app = SimulatorApp(tenant, token=TOKEN, page_size=10, cap=100_000, nextlink_origin="https://internal:9443")
    assert body(get(app, "/api/vouchers", {"isActive": "true"}))["nextLink"].startswith(
        "https://internal:9443/api/vouchers?")
    mixed = SimulatorApp(tenant, token=TOKEN, page_size=2, cap=100_000, nextlink_form="mixed")
    links = {body(get(mixed, "/api/vouchers", {"purchaseCode": p["voucherPurchaseCode"]})).get("nextLink")
             for p in tenant.records("purchases")[:60]}
    assert len({link[:2] for link in links if link}) >= 3  # "ht"tp, "/a"pi, "//"host, "?"query: drawn per query


def test_a_date_offset_moves_the_date_header_only(tenant):
    plain = SimulatorApp(tenant, token=TOKEN)
    ahead = SimulatorApp(tenant, token=TOKEN, date_offset=dt.timedelta(days=30))
    a, b = get(plain, "/api/vouchers/partners"), get(ahead, "/api/vouchers/partners")
    assert email.utils.parsedate_to_datetime(b.headers["Date"]) - email.utils.parsedate_to_datetime(
        a.headers["Date"]) == dt.timedelta(days=30)
    assert a.content == b.content


def test_empty_resources_answer_no_records_and_leave_the_others_alone(tenant):
    app = SimulatorApp(tenant, token=TOKEN, empty_resources=("purchases", "vouchers"))
    for resource in ("purchases", "vouchers"):
        response = get(app, *FILTERED[resource])
        assert response.status_code == 200 and body(response) == {"data": []}
    assert len(records(app, "partners")) == len(tenant.records("partners"))
    with pytest.raises(ValueError):
        SimulatorApp(tenant, empty_resources=("exams",))
