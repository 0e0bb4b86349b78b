"""The orchestrator-free parts of ``certiverse_warehouse.orchestration``: commands run as a scheduler runs
them, which failures are worth retrying, the counter check's verdict, the raw tables an orchestrator shows,
and the dbt manifest it describes the models from. (Dagster and Airflow themselves: test_dagster.py,
test_airflow.py.)"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import duckdb
import pytest

from certiverse_warehouse.orchestration import steps
from certiverse_warehouse.orchestration.commands import CommandRun
from certiverse_warehouse.orchestration.dbt_manifest import manifest_path
from certiverse_warehouse.orchestration.failures import worth_retrying
from certiverse_warehouse.pipelines.cli import EXIT_API, EXIT_AUTH, EXIT_CONFIG, EXIT_DESTINATION
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.pipelines.transform import TRANSFORMS_DIR
from tests.readers import HeldConnection


def run_command(arguments: list[str], env: dict[str, str], tmp_path: Path) -> tuple[int, str | None, list[str]]:
    lines: list[str] = []
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    outcome = CommandRun([*arguments, "--duckdb-file", str(tmp_path / "w.duckdb"),
                          "--pipelines-dir", str(tmp_path / "p")],
                         env={**clean, "RUNTIME__DLTHUB_TELEMETRY": "false", **env}).wait(lines.append)
    return outcome.exit_code, outcome.message, lines


@pytest.mark.slow
def test_a_command_tells_its_exit_code_and_one_line_message_and_whether_to_retry(small_tenant_template, simulator,
                                                                                tmp_path):
    wrong = "not-the-right-token-123"
    with simulator(small_tenant_template) as (_, url):
        token = run_command(["load", "--base-url", url], {"SOURCES__CERTIVERSE__API_TOKEN": wrong}, tmp_path)
    api = run_command(["load", "--base-url", "http://127.0.0.1:9"],
                      {"SOURCES__CERTIVERSE__API_TOKEN": "t", "SOURCES__CERTIVERSE__RETRY_BUDGET": "0"}, tmp_path)
    config = run_command(["load"], {"SOURCES__CERTIVERSE__API_TOKEN": "t"}, tmp_path)

    assert token[0] == EXIT_AUTH and "refused the token" in token[1] and wrong not in "\n".join(token[2])
    assert api[0] == EXIT_API and "giving up" in api[1]
    assert config[0] == EXIT_CONFIG and "base URL" in config[1]
    assert [worth_retrying(code) for code, _, _ in (token, api, config)] == [False, True, False]


@pytest.mark.slow
def test_a_locked_warehouse_is_worth_retrying(small_tenant_template, simulator, tmp_path):
    duckdb.connect(str(tmp_path / "w.duckdb")).close()
    with simulator(small_tenant_template) as (app, url), HeldConnection(tmp_path / "w.duckdb", read_only=False):
        code, message, _ = run_command(["load", "--base-url", url, "--lock-timeout", "0"],
                                       {"SOURCES__CERTIVERSE__API_TOKEN": app.token}, tmp_path)
    assert code == EXIT_DESTINATION and "locked" in message
    assert worth_retrying(code)


@pytest.mark.slow
def test_a_stopped_command_ends_within_the_grace_period(small_tenant_template, simulator, tmp_path):
    with simulator(small_tenant_template, latency_ms=200) as (app, url):
        run = CommandRun(["load", "--base-url", url, "--progress", "--duckdb-file", str(tmp_path / "w.duckdb"),
                          "--pipelines-dir", str(tmp_path / "p")],
                         env={"SOURCES__CERTIVERSE__API_TOKEN": app.token, "RUNTIME__DLTHUB_TELEMETRY": "false"})
        time.sleep(3)  # mid-read: at 200 ms a request the small tenant takes far longer
        started = time.monotonic()
        run.stop(grace=30)
        stopped_after = time.monotonic() - started
    assert run.process.returncode != 0
    assert stopped_after < 30


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The small tenant loaded once (first run) into a DuckDB file."""
    from certiverse_warehouse.simulator import SimulatorApp, Tenant, serve

    folder = tmp_path_factory.mktemp("loaded")
    warehouse = steps.Warehouse("duckdb", str(folder / "w.duckdb"), str(folder / "p"))
    app = SimulatorApp(Tenant.generate("small", seed=42))
    with serve(app) as url:
        run_load(warehouse.context(), {"base_url": url, "api_token": app.token})
    return warehouse


@pytest.mark.slow
def test_the_raw_table_assets_are_the_tables_a_load_writes(loaded):
    pipeline = loaded.context().pipeline
    written = {t for t in pipeline.default_schema.data_table_names() if not t.startswith("_")}
    assert set(steps.RAW_TABLES) == written


@pytest.mark.slow
def test_the_counter_check_fails_when_a_purchase_disagrees_with_its_vouchers(loaded, tmp_path):
    shutil.copy(loaded.duckdb_file, tmp_path / "w.duckdb")
    shutil.copytree(loaded.pipelines_dir, tmp_path / "p")
    copy = steps.Warehouse("duckdb", str(tmp_path / "w.duckdb"), str(tmp_path / "p"))
    after_load = steps.counter_verdict(copy)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        code, voucher = con.execute(
            "select voucher_purchase_code, id from certiverse.vouchers where _dlt_valid_to is null and is_used "
            "and voucher_purchase_code not in (select voucher_purchase_code from "
            "certiverse._certiverse_api_accounting) limit 1").fetchone()
        con.execute("delete from certiverse.vouchers where id = ?", [voucher])
    broken = steps.counter_verdict(copy)

    assert after_load.passed and after_load.checked > 0 and after_load.unexplained == []
    assert not broken.passed and broken.unexplained == [code]
    assert broken.api_accounting == after_load.api_accounting


@pytest.mark.slow
def test_the_manifest_is_parsed_once_and_again_when_the_project_changes(loaded, tmp_path):
    project = tmp_path / "transforms"
    shutil.copytree(TRANSFORMS_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "__pycache__"))
    context = loaded.context()
    first = manifest_path(context, project)
    parsed_at = first.stat().st_mtime_ns
    again = manifest_path(context, project)
    assert again == first and again.stat().st_mtime_ns == parsed_at
    model = project / "models" / "marts" / "voucher_utilization.sql"
    os.utime(model, ns=(parsed_at + 10**9, parsed_at + 10**9))
    assert manifest_path(context, project).stat().st_mtime_ns > parsed_at


@pytest.mark.slow
def test_every_dbt_test_belongs_to_one_model_so_that_orchestrators_show_it_as_that_models_check(loaded):
    manifest = json.loads(manifest_path(loaded.context()).read_text())
    nodes = manifest["nodes"]
    unattached = []
    for test in (n for n in nodes.values() if n["resource_type"] == "test"):
        parents = set(test["depends_on"]["nodes"])
        # as dagster-dbt attaches a test: a generic test to its model, a singular test to its one parent,
        # else to the model its meta names
        named = (test["config"].get("meta") or {}).get("dagster", {}).get("ref", {}).get("name")
        attached = test.get("attached_node") or (next(iter(parents)) if len(parents) == 1 else None) or (
            f"model.certiverse.{named}" if named else None)
        if attached not in parents or not attached.startswith("model."):
            unattached.append(test["name"])
    assert unattached == []
