"""Dagster, for real: its own environment (tests/orchestrators.py), the repository's code location, the
simulator's tenant over loopback HTTP.

``dagster asset materialize --select '*' -m <module>`` runs from the repository with the simulator's base
URL and token in the environment, twice (a first run, then a nightly run one simulated day later), into a
DuckDB file and a pipelines folder of the test's own; what Dagster recorded is read back from its instance
(``DAGSTER_HOME``) by ``tests/dagster_probe.py`` in the same environment.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pytest

from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import vouchers_state
from certiverse_warehouse.simulator import SimulatorApp, Tenant, serve
from tests.helpers import RESOURCES, TOKEN, differences
from tests.orchestrators import ROOT, orchestrator_env

pytestmark = pytest.mark.slow

MODULE = "certiverse_warehouse.orchestration.dagster_definitions"
MARTS = ("voucher_utilization", "voucher_expiry", "partner_utilization", "program_utilization", "expiry_calendar")
RAW = "certiverse/"


def materialize(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["dagster", "asset", "materialize", "--select", "*", "-m", MODULE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)


def probe(env: dict[str, str], *args: str) -> Any:
    done = subprocess.run(["python", str(ROOT / "tests" / "dagster_probe.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def dagster_home(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return folder


def two_nights(work: Path) -> dict[str, Any]:
    """Two materializations of every asset against the small tenant, a simulated day apart."""
    tenant = Tenant.generate("small", seed=42)
    app = SimulatorApp(tenant)
    warehouse = work / "warehouse.duckdb"
    with serve(app) as url:
        env = orchestrator_env("dagster", DAGSTER_HOME=str(dagster_home(work / "home")),
                               DLT_DATA_DIR=str(work / "dlt"), DESTINATION__DUCKDB__CREDENTIALS=str(warehouse),
                               SOURCES__CERTIVERSE__BASE_URL=url, SOURCES__CERTIVERSE__API_TOKEN=app.token)
        first = materialize(env)
        assert first.returncode == 0, first.stderr[-5000:]
        tenant.advance_day()
        second = materialize(env)
        assert second.returncode == 0, second.stderr[-5000:]
        freshness = {hours: probe(env, "freshness", str(hours)) for hours in (36.0, 0.0)}
    return {"env": env, "tenant": tenant, "warehouse": warehouse, "pipelines_dir": work / "dlt" / "pipelines",
            "runs": probe(env, "runs"), "described": probe(env, "describe"), "freshness": freshness}


# One test for the two nights, the checks below its parts: the nights are the costly part (two
# materializations through Dagster), and a pytest worker of their own would have to make them again.
def test_two_nights_from_the_repository_every_asset_every_check_and_the_warehouse_exact(tmp_path):
    nights = two_nights(tmp_path)
    every_asset_is_materialized_first_then_nightly(nights)
    every_check_passes_on_both_nights_dbt_tests_counter_check_and_freshness(nights)
    the_dbt_tests_are_checks_on_their_models_and_the_models_descend_from_the_raw_tables(nights)
    the_warehouse_equals_the_simulators_tenant_after_the_nightly_run(nights)
    the_marts_and_the_published_copy_are_left_behind(nights)
    the_freshness_check_fails_when_the_last_load_is_older_than_the_limit(nights)
    the_daily_schedule_runs_every_asset_and_checks_freshness(nights)


def every_asset_is_materialized_first_then_nightly(nights):
    runs = [r for r in nights["runs"] if r["job"] == "__ASSET_JOB"]
    assets = set(nights["described"]["assets"])
    assert [r["status"] for r in runs] == ["SUCCESS", "SUCCESS"]
    for run in runs:
        assert set(run["materialized"]) == assets
    modes = [run["materialized"][RAW + "vouchers"]["mode"] for run in runs]
    assert modes == ["full", "nightly"]


def every_check_passes_on_both_nights_dbt_tests_counter_check_and_freshness(nights):
    checks = set(nights["described"]["checks"])
    assert {RAW + "vouchers:counter_check", RAW + "vouchers:fresh"} <= checks
    for run in (r for r in nights["runs"] if r["job"] == "__ASSET_JOB"):
        evaluated = {f"{c['asset']}:{c['check']}": c["passed"] for c in run["checks"]}
        assert set(evaluated) == checks
        assert [name for name, passed in evaluated.items() if not passed] == []


def the_dbt_tests_are_checks_on_their_models_and_the_models_descend_from_the_raw_tables(nights):
    described = nights["described"]
    manifest = json.loads(next(nights["pipelines_dir"].rglob("manifest-duckdb-*.json")).read_text())
    nodes = manifest["nodes"]
    # An ephemeral model (int_purchases) is inlined into others and is no asset: dagster-dbt gives its
    # tests no check to hang on; dbt still runs them in the build.
    ephemeral = {key for key, n in nodes.items() if n["resource_type"] == "model"
                 and n["config"]["materialized"] == "ephemeral"}
    tests = {n["name"] for n in nodes.values() if n["resource_type"] == "test"
             and (n.get("attached_node") or "") not in ephemeral}
    checks = {c.split(":", 1)[1] for c in described["checks"]}
    assert tests and tests <= checks
    assert len(checks) == len(tests) + 2  # and the counter check and freshness
    models = {n["name"] for key, n in nodes.items() if n["resource_type"] == "model" and key not in ephemeral}
    assert models <= set(described["assets"])
    assert RAW + "vouchers" in described["assets"]["stg_vouchers"]
    assert RAW + "programs__store_exams" in described["assets"]["stg_store_exams"]
    marts = {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "model" and n["fqn"][1] == "marts"}
    assert set(MARTS) <= marts
    assert set(described["assets"][RAW + "published_copy"]) == marts
    assert {described["groups"][m] for m in marts} == {"marts"}


def the_warehouse_equals_the_simulators_tenant_after_the_nightly_run(nights):
    context = RunContext.from_config("duckdb", str(nights["warehouse"]), pipelines_dir=str(nights["pipelines_dir"]))
    assert vouchers_state(context.pipeline)["mode"] == "nightly"
    for resource in RESOURCES:
        assert differences(context, resource, nights["tenant"].records(resource)) == [], resource


def the_marts_and_the_published_copy_are_left_behind(nights):
    published = nights["warehouse"].with_name("warehouse_published.duckdb")
    with duckdb.connect(str(published), read_only=True) as con:
        relations = {name for (name,) in con.execute("select table_name from information_schema.tables").fetchall()}
        current = con.execute("select count(*) from vouchers").fetchone()[0]
    assert set(MARTS) <= relations
    assert current == len(nights["tenant"].records("vouchers"))
    with duckdb.connect(str(nights["warehouse"]), read_only=True) as con:
        built = {name for (name,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'certiverse'").fetchall()}
    assert set(MARTS) <= built


def the_freshness_check_fails_when_the_last_load_is_older_than_the_limit(nights):
    within, beyond = nights["freshness"][36.0], nights["freshness"][0.0]
    assert [(c["check"], c["passed"]) for c in within["checks"]] == [("fresh", True)]
    assert [(c["check"], c["passed"]) for c in beyond["checks"]] == [("fresh", False)]
    assert beyond["checks"][0]["metadata"]["max_age_hours"] == 0.0


def the_daily_schedule_runs_every_asset_and_checks_freshness(nights):
    described = nights["described"]
    assert {"certiverse_nightly", "certiverse_freshness"} <= set(described["jobs"])
    assert len(described["schedules"]) == 2
    assert all(len(cron.split()) == 5 and cron.split()[2:] == ["*", "*", "*"] for cron in described["schedules"].values())


def test_a_refused_token_fails_the_load_once_with_the_commands_message(tmp_path, small_tenant_template):
    app = SimulatorApp(small_tenant_template)
    with serve(app) as url:
        env = orchestrator_env("dagster", DAGSTER_HOME=str(dagster_home(tmp_path / "home")),
                               DLT_DATA_DIR=str(tmp_path / "dlt"),
                               DESTINATION__DUCKDB__CREDENTIALS=str(tmp_path / "warehouse.duckdb"),
                               SOURCES__CERTIVERSE__BASE_URL=url, SOURCES__CERTIVERSE__API_TOKEN="not-the-right-one")
        done = materialize(env)
    assert done.returncode != 0
    (run,) = probe(env, "runs")
    assert run["status"] == "FAILURE"
    (failure,) = run["failures"]
    assert failure["step"] == "certiverse_load"
    assert failure["metadata"]["exit_code"] == 3
    assert "token" in failure["description"] and TOKEN not in failure["description"]
    assert run["step_starts"] == ["certiverse_load"]  # not retried: the token fails the same way again
    assert run["materialized"] == {}
