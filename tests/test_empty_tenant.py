"""An empty tenant (a new organisation, a sandbox) loads: every table with no rows, the marts built and empty, the
published copy written, exit 0; when data appears, the next run is a normal first read and ends exact."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from certiverse_warehouse.pipelines.cli import EXIT_OK, main
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.pipelines.transform import run_transforms
from certiverse_warehouse.simulator.data import RESOURCES as ALL
from tests.helpers import RESOURCES, differences

MARTS = sorted(p.stem for p in (Path(__file__).parents[1] / "transforms" / "models" / "marts").glob("*.sql"))
# Raw tables the staging models read: each must exist, with its columns, before any row.
RAW = (*RESOURCES, "programs__store_exams")


def run(tmp_path: Path, url: str, *extra: str) -> int:
    return main(["run", "--base-url", url, "--duckdb-file", str(tmp_path / "w.duckdb"),
                 "--pipelines-dir", str(tmp_path / "p"), *extra])


def counts(path: Path, relations: list[str] | tuple[str, ...], schema: str) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {r: con.execute(f"select count(*) from {schema}.{r}").fetchone()[0] for r in relations}


def test_a_run_against_an_empty_tenant_exits_0_then_a_run_after_data_appears_is_a_first_read_and_exact(
    small_tenant_template, simulator, tmp_path, monkeypatch, capsys
):
    tenant = small_tenant_template
    with simulator(tenant, empty_resources=ALL) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        assert run(tmp_path, url) == EXIT_OK
        assert counts(tmp_path / "w.duckdb", RAW, "certiverse") == dict.fromkeys(RAW, 0)
        # every mart empty but headline_figures, whose one row says so
        empty = {**dict.fromkeys(MARTS, 0), "headline_figures": 1}
        assert counts(tmp_path / "w.duckdb", MARTS, "certiverse") == empty
        assert counts(tmp_path / "w_published.duckdb", MARTS, "main") == empty
        with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
            assert con.execute("select purchases, vouchers_issued, value_used from certiverse.headline_figures"
                               ).fetchall() == [(0, 0, 0)]
        assert main(["status", "--duckdb-file", str(tmp_path / "w.duckdb"),
                     "--pipelines-dir", str(tmp_path / "p")]) == EXIT_OK
        capsys.readouterr()
        app.empty_resources = frozenset()  # the organisation's first purchases
        assert run(tmp_path, url, "--json") == EXIT_OK
        summary = json.loads(capsys.readouterr().out)
    fresh = RunContext.from_config("duckdb", str(tmp_path / "fresh.duckdb"), pipelines_dir=str(tmp_path / "fresh"))
    with simulator(tenant) as (app, url):
        first = run_load(fresh, {"base_url": url, "api_token": app.token})
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    assert summary["mode"] == "full read" and summary["full_read_reason"] is None
    assert summary["requests"] == first.requests.as_dict()  # the same read as a first load
    for resource in RESOURCES:
        assert differences(pipeline, resource, tenant.records(resource)) == []
    vouchers = len(tenant.records("vouchers"))
    assert counts(tmp_path / "w_published.duckdb", ["voucher_status"], "main") == {"voucher_status": vouchers}


def test_a_sandbox_with_programs_but_no_purchases_runs_and_builds_empty_marts(
    small_tenant_template, simulator, tmp_path, monkeypatch
):
    with simulator(small_tenant_template, empty_resources=("purchases", "vouchers")) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        assert run(tmp_path, url) == EXIT_OK
    raw = counts(tmp_path / "w.duckdb", RAW, "certiverse")
    assert raw["programs"] == len(small_tenant_template.records("programs"))
    assert raw["purchases"] == raw["vouchers"] == 0
    assert counts(tmp_path / "w.duckdb", ["voucher_status", "voucher_utilization"], "certiverse") == {
        "voucher_status": 0, "voucher_utilization": 0}


@pytest.mark.postgres
def test_an_empty_tenant_loads_and_transforms_on_postgres(small_tenant_template, simulator, postgres_server, tmp_path):
    pipeline = RunContext.from_config("postgres", postgres_server.create_database("empty_tenant"),
                             pipelines_dir=str(tmp_path / "p"))
    with simulator(small_tenant_template, empty_resources=ALL) as (app, url):
        result = run_load(pipeline, {"base_url": url, "api_token": app.token})
        assert {t: result.rows.get(t) for t in RAW} == dict.fromkeys(RAW, 0)
        run_transforms(pipeline, small_tenant_template.today)
        with pipeline.sql_client() as client:
            assert {m: client.execute_sql(f"select count(*) from {client.make_qualified_table_name(m)}")[0][0]
                    for m in MARTS} == {**dict.fromkeys(MARTS, 0), "headline_figures": 1}  # its one row says so
        app.empty_resources = frozenset()
        run_load(pipeline, {"base_url": url, "api_token": app.token})
    assert pipeline.pipeline.state["sources"]["certiverse"]["resources"]["vouchers"]["mode"] == "full"
    for resource in ("partners", "programs", "vouchers"):
        assert differences(pipeline, resource, small_tenant_template.records(resource)) == []
