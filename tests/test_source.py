"""The dlt source against the simulator: every record exactly once, whatever the cap and the network do."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest
import respx

from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.sources.certiverse import CapExceededError
from tests.helpers import RESOURCES, TOKEN, differences, extract, ids

STATUS_FILTERABLE = {"CheckoutCancelled", "CheckoutExpired", "CheckoutFailed", "CheckoutInProgress", "Complete",
                     "VoucherCreation"}


def truth_ids(tenant, resource: str) -> Counter:
    return Counter({r["id"]: 1 for r in tenant.records(resource)})


def tightest_caps(tenant) -> tuple[int, int]:
    """The smallest caps (vouchers, purchases) under which every record is still reachable: one purchase's
    boolean slice of vouchers, or the purchases of one program × partner pair, is as narrow as a query gets."""
    vouchers = Counter((v["voucherPurchaseCode"], v["isUsed"], v["isActive"]) for v in tenant.records("vouchers"))
    purchases = tenant.records("purchases")
    programs = {p["programName"] for p in purchases}
    partners = {p["partnerName"] for p in purchases}
    # Name filters match partially: "Acme" also returns "Acme Europe".
    pair = max(
        sum(1 for p in purchases if program.lower() in p["programName"].lower()
            and partner.lower() in p["partnerName"].lower())
        for program in programs for partner in partners
    )
    return max(vouchers.values()), pair


def test_every_resource_yields_every_id_exactly_once(small_tenant_template, simulator):
    with simulator(small_tenant_template) as (_, url):
        records = extract(url)
    for resource in RESOURCES:
        assert ids(records[resource]) == truth_ids(small_tenant_template, resource), resource


def test_load_matches_the_simulator_field_by_field(small_tenant_template, simulator, tmp_path):
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    with simulator(small_tenant_template) as (app, url):
        result = run_load(pipeline, {"base_url": url, "api_token": app.token})
    for resource in RESOURCES:
        assert differences(pipeline, resource, small_tenant_template.records(resource)) == []
    users = sum(len(p["users"]) for p in small_tenant_template.records("partners"))
    exams = sum(len(p["storeExams"]) for p in small_tenant_template.records("programs"))
    assert result.rows["partners__users"] == users
    assert result.rows["programs__store_exams"] == exams


@pytest.mark.parametrize("cap_mode", ["first", "late"])
def test_queries_over_the_cap_are_split_until_every_record_is_read_once(small_tenant_template, simulator, cap_mode):
    tenant = small_tenant_template
    voucher_cap, purchase_cap = tightest_caps(tenant)
    purchases = tenant.records("purchases")
    partner_of = {p["voucherPurchaseCode"]: p["partnerName"] for p in purchases}
    program_of = {p["voucherPurchaseCode"]: p["programName"] for p in purchases}
    vouchers = tenant.records("vouchers")
    # The cap must bite on every dimension the source partitions by, or this test proves nothing.
    assert max(Counter(p["partnerName"] for p in purchases).values()) > purchase_cap
    assert max(Counter(p["programName"] for p in purchases).values()) > purchase_cap
    assert max(Counter(p["status"] for p in purchases).values()) > purchase_cap
    assert max(Counter(partner_of[v["voucherPurchaseCode"]] for v in vouchers).values()) > voucher_cap
    assert max(Counter(program_of[v["voucherPurchaseCode"]] for v in vouchers).values()) > voucher_cap
    assert max(Counter((v["isUsed"], v["isActive"]) for v in vouchers).values()) > voucher_cap
    with simulator(tenant, cap=voucher_cap, cap_mode=cap_mode, page_size=7) as (app, url):
        app.endpoint_caps["purchases"] = purchase_cap
        records = extract(url)
        refused = Counter(path for (path, status), n in app.stats.items() if status == 422)
    assert refused["/api/vouchers"] > 0 and refused["/api/vouchers/purchases"] > 0
    for resource in RESOURCES:
        assert ids(records[resource]) == truth_ids(tenant, resource), resource


def test_a_query_that_cannot_be_narrowed_enough_fails_loudly_naming_it(small_tenant_template, simulator):
    with simulator(small_tenant_template) as (app, url):
        app.endpoint_caps["vouchers"] = 1
        with pytest.raises(Exception) as caught:
            extract(url, ["vouchers"])
    cause = caught.value
    while cause is not None and not isinstance(cause, CapExceededError):
        cause = cause.__cause__ or cause.__context__
    assert isinstance(cause, CapExceededError)
    assert "GET /api/vouchers?" in str(cause) and "purchaseCode=" in str(cause)


def test_faults_are_ridden_out_and_the_warehouse_equals_the_truth(small_tenant_template, simulator, tmp_path):
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    faults = dict(fault_rate_500=0.06, fault_rate_429=0.03, retry_after=0, fault_rate_truncate=0.02, latency_ms=1)
    with simulator(small_tenant_template, page_size=20, **faults) as (app, url):
        run_load(pipeline, {"base_url": url, "api_token": app.token, "retry_backoff": 0.01})
        injected = dict(app.faults)
    assert all(injected.get(kind, 0) > 0 for kind in ("500", "429", "truncate")), injected
    for resource in RESOURCES:
        assert differences(pipeline, resource, small_tenant_template.records(resource)) == []


def test_unknown_status_loads_as_data_though_the_api_refuses_it_as_a_filter(small_tenant_template, simulator):
    unknown = {p["status"] for p in small_tenant_template.records("purchases")} - STATUS_FILTERABLE
    assert unknown, "the tenant should hold a status the reference does not list"
    with simulator(small_tenant_template) as (_, url):
        refused = httpx.get(f"{url}/api/vouchers/purchases", params={"status": sorted(unknown)[0]},
                            headers={"Authorization": f"Bearer {TOKEN}"})
        records = extract(url, ["purchases"])
    assert refused.status_code == 400
    loaded = {p["status"] for p in records["purchases"]}
    assert unknown <= loaded


def test_new_fields_become_columns_and_missing_fields_break_nothing(small_tenant_template, tmp_path):
    from certiverse_warehouse.simulator import SimulatorApp

    app = SimulatorApp(small_tenant_template)
    base = "http://certiverse.test"

    def drifted(request: httpx.Request) -> httpx.Response:
        status, headers, body = app.handle(request.method, str(request.url), dict(request.headers), request.content)
        if status == 200 and request.url.path == "/api/vouchers":
            payload = json.loads(body)
            for voucher in payload["data"]:
                voucher["loyaltyTier"] = "gold"
                voucher.pop("voucherCode", None)
            body = json.dumps(payload).encode()
        return httpx.Response(status, headers=headers, content=body)

    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    with respx.mock:
        respx.route(host="certiverse.test").mock(side_effect=drifted)
        result = run_load(pipeline, {"base_url": base, "api_token": app.token})
    assert result.rows["vouchers"] == len(small_tenant_template.records("vouchers"))
    with pipeline.sql_client() as client:
        tiers = client.execute_sql("select count(*) from vouchers where loyalty_tier = 'gold'")[0][0]
    assert tiers == result.rows["vouchers"]


def test_requests_are_counted_by_endpoint_and_outcome(small_tenant_template, simulator, tmp_path):
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    with simulator(small_tenant_template, fault_rate_500=0.1) as (app, url):
        result = run_load(pipeline, {"base_url": url, "api_token": app.token, "retry_backoff": 0.01})
        served = Counter()
        for (path, status), n in app.stats.items():
            served[(path.rsplit("/", 1)[-1], str(status))] += n
    counted = result.requests.as_dict()
    assert counted["vouchers"]["200"] == served[("vouchers", "200")]
    assert counted["vouchers"].get("500", 0) == served[("vouchers", "500")]
    assert counted["purchases"]["200"] == served[("purchases", "200")]


def test_the_token_never_lands_in_state_packages_traces_logs_or_the_warehouse(
    small_tenant_template, simulator, tmp_path, caplog
):
    token = "UNIQUE-T0KEN-never-stored-42"
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    caplog.set_level("DEBUG")
    with simulator(small_tenant_template, token=token, fault_rate_500=0.1) as (app, url):
        run_load(pipeline, {"base_url": url, "api_token": token, "retry_backoff": 0.01})
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert any(f.suffix == ".duckdb" for f in files)
    assert [str(f) for f in files if token.encode() in f.read_bytes()] == []
    assert token not in caplog.text


def test_the_request_rate_limit_is_configurable_the_dlt_way(small_tenant_template, simulator, monkeypatch):
    from certiverse_warehouse.sources.certiverse import client as client_module

    seen: list = []
    original = client_module.CertiverseClient.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("max_requests_per_second"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(client_module.CertiverseClient, "__init__", spy)
    monkeypatch.setenv("SOURCES__CERTIVERSE__MAX_REQUESTS_PER_SECOND", "250")
    with simulator(small_tenant_template) as (_, url):
        extract(url, ["partners"])
    assert seen == [250.0]
