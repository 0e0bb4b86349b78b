"""Operator commands: `status` as a health check, `purchase create` for $0 programs."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from certiverse_warehouse.pipelines.cli import EXIT_API, EXIT_OK, EXIT_STALE, main
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.pipelines.purchase import PurchaseRefused, create_purchase
from certiverse_warehouse.sources.certiverse import CertiverseClient


def warehouse_args(tmp_path) -> list[str]:
    return ["--duckdb-file", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p")]


def active_zero_dollar_program(tenant) -> str:
    return next(p["name"] for p in tenant.records("programs")
                if p["isActive"] and not p["isArchived"] and p["partners"]["partnerCostPerVoucher"] == 0)


def priced_program(tenant) -> str:
    return next(p["name"] for p in tenant.records("programs")
                if p["isActive"] and not p["isArchived"] and p["partners"]["partnerCostPerVoucher"] > 0)


def active_partner(tenant) -> str:
    return next(p["name"] for p in tenant.records("partners") if p["isActive"] and not p["isArchived"])


def test_status_before_any_load_is_stale(tmp_path, capsys):
    assert main(["status", *warehouse_args(tmp_path)]) == EXIT_STALE
    assert "NEVER LOADED" in capsys.readouterr().out


def test_status_is_ok_after_a_load_and_stale_past_the_freshness_limit(small_tenant_template, simulator, tmp_path,
                                                                      capsys):
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    with simulator(small_tenant_template) as (app, url):
        run_load(pipeline, {"base_url": url, "api_token": app.token})
    assert main(["status", *warehouse_args(tmp_path)]) == EXIT_OK
    assert capsys.readouterr().out.startswith("OK: last successful load")
    assert main(["status", "--max-age-hours", "0", "--json", *warehouse_args(tmp_path)]) == EXIT_STALE
    status = json.loads(capsys.readouterr().out)
    assert status["stale"] and status["pending_packages"] == []
    assert status["last_mode"] == "full" and status["recheck_night"] == 0
    assert status["rows"]["vouchers"] == len(small_tenant_template.records("vouchers"))


def test_purchase_create_buys_vouchers_of_a_zero_dollar_program(small_tenant, simulator, monkeypatch, capsys):
    partner, program = active_partner(small_tenant), active_zero_dollar_program(small_tenant)
    before = len(small_tenant.records("purchases"))
    with simulator(small_tenant) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        code = main(["purchase", "create", "--partner", partner, "--program", program, "--quantity", "5",
                     "--notes", "test batch", "--base-url", url, "--json"])
    assert code == EXIT_OK
    created = json.loads(capsys.readouterr().out)
    purchases = small_tenant.records("purchases")
    assert len(purchases) == before + 1
    assert created["voucherPurchaseCode"] in {p["voucherPurchaseCode"] for p in purchases}
    assert (created["partnerName"], created["programName"], created["quantity"]) == (partner, program, 5)


def test_purchase_create_refuses_a_priced_program_without_sending_anything(small_tenant, simulator, monkeypatch,
                                                                           capsys):
    with simulator(small_tenant) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        code = main(["purchase", "create", "--partner", active_partner(small_tenant), "--program",
                     priced_program(small_tenant), "--quantity", "5", "--notes", "x", "--base-url", url])
        posts = sum(n for (path, status), n in app.stats.items() if path == "/api/vouchers/purchases")
    assert code == EXIT_API
    assert "only $0 programs" in capsys.readouterr().err
    assert posts == 0


@pytest.mark.parametrize("quantity", [0, 1001])
def test_purchase_create_checks_the_quantity_range(small_tenant, simulator, quantity):
    with simulator(small_tenant) as (app, url), CertiverseClient(url, app.token) as client:
        with pytest.raises(PurchaseRefused, match="between 1 and 1000"):
            create_purchase(client, active_partner(small_tenant), active_zero_dollar_program(small_tenant),
                            quantity, "x")


@respx.mock
def test_purchase_create_explains_what_the_api_refused():
    base = "https://tenant.example.test"
    respx.get(f"{base}/api/vouchers/partners").mock(return_value=httpx.Response(
        200, json={"data": [{"name": "Acme", "isActive": True, "isArchived": False}]}))
    respx.get(f"{base}/api/vouchers/programs").mock(return_value=httpx.Response(
        200, json={"data": [{"name": "Free", "isActive": True, "isArchived": False,
                             "partners": {"partnerCostPerVoucher": 0}}]}))
    respx.post(f"{base}/api/vouchers/purchases").mock(return_value=httpx.Response(
        400, json={"message": "Partner is not assigned to this program"}))
    with CertiverseClient(base, "t") as client, pytest.raises(PurchaseRefused) as caught:
        create_purchase(client, "Acme", "Free", 3, "batch")
    assert "refused the purchase (400): Partner is not assigned to this program" in str(caught.value)


def test_duckdb_memory_is_capped_and_the_cap_is_configurable(tmp_path, monkeypatch):
    def limit() -> str:
        pipeline = RunContext.from_config("duckdb", str(tmp_path / "m.duckdb"), pipelines_dir=str(tmp_path / "p"))
        with pipeline.sql_client() as client:
            return client.execute_sql("select current_setting('memory_limit')")[0][0]

    assert limit() == "122.0 MiB"  # 128MB, as DuckDB prints it
    monkeypatch.setenv("DESTINATION__DUCKDB__MEMORY_LIMIT", "1GB")
    assert limit() == "953.6 MiB"


def test_a_relative_duckdb_file_is_the_one_in_this_folder_whatever_an_earlier_run_stored(
    small_tenant_template, simulator, tmp_path, monkeypatch
):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir(), second.mkdir()
    pipelines = str(tmp_path / "p")
    monkeypatch.chdir(first)
    with simulator(small_tenant_template) as (app, url):
        run_load(RunContext.from_config("duckdb", "w.duckdb", pipelines_dir=pipelines),
                 {"base_url": url, "api_token": app.token})
        monkeypatch.chdir(second)
        # The same pipeline, started elsewhere: its state remembers first/w.duckdb.
        run_load(RunContext.from_config("duckdb", "w.duckdb", pipelines_dir=pipelines),
                 {"base_url": url, "api_token": app.token})
    assert (first / "w.duckdb").exists() and (second / "w.duckdb").exists()
    assert main(["status", "--duckdb-file", "w.duckdb", "--pipelines-dir", pipelines]) == EXIT_OK
