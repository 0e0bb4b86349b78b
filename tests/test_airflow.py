"""Airflow 3, for real: its own environment (tests/orchestrators.py), a metadata database on SQLite made by
``airflow db migrate``, the DAG file users copy (docs/scheduling/airflow_certiverse_nightly.py) in the dags
folder, and ``airflow dags test`` against the simulator's tenant over loopback HTTP.

What Airflow decided (task states, tries) is read from its metadata database after each run.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pytest

from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import vouchers_state
from certiverse_warehouse.simulator import SimulatorApp, Tenant, serve
from tests.helpers import RESOURCES, differences
from tests.orchestrators import ROOT, orchestrator_env

pytestmark = pytest.mark.slow

DAG_FILE = ROOT / "docs" / "scheduling" / "airflow_certiverse_nightly.py"
# The same DAG with a short retry delay, so that a retry happens within the test.
RETRY_DAG = """
import datetime as dt
from certiverse_warehouse.orchestration.airflow_dag import certiverse_nightly
dag = certiverse_nightly("certiverse_retry_probe", retries=1, retry_delay=dt.timedelta(seconds=1))
"""
MARTS = ("voucher_utilization", "voucher_expiry", "partner_utilization", "program_utilization", "expiry_calendar")


def dags_test(env: dict[str, str], dag_id: str) -> subprocess.CompletedProcess:
    return subprocess.run(["airflow", "dags", "test", dag_id], env=env, capture_output=True, text=True, timeout=900)


def task_states(home: Path, dag_id: str) -> dict[str, tuple[str, int]]:
    """task id -> (state, try number) of the DAG's latest run, from Airflow's metadata database."""
    with sqlite3.connect(home / "airflow.db") as db:
        (run_id,) = db.execute("select run_id from dag_run where dag_id = ? order by id desc limit 1",
                               (dag_id,)).fetchone()
        rows = db.execute("select task_id, state, try_number from task_instance where dag_id = ? and run_id = ?",
                          (dag_id, run_id)).fetchall()
    return {task: (state, tries) for task, state, tries in rows}


def airflow_home(work: Path) -> dict[str, Any]:
    """An Airflow home with its database migrated and the two DAG files in its dags folder."""
    dags = work / "dags"
    dags.mkdir(parents=True)
    shutil.copy(DAG_FILE, dags / DAG_FILE.name)
    (dags / "certiverse_retry_probe.py").write_text(RETRY_DAG)
    settings = {"AIRFLOW_HOME": str(work / "home"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "DLT_DATA_DIR": str(work / "dlt")}
    migrated = subprocess.run(["airflow", "db", "migrate"], env=orchestrator_env("airflow", **settings),
                              capture_output=True, text=True, timeout=600)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    return {"work": work, "home": work / "home", "settings": settings}


def two_nights(airflow: dict[str, Any]) -> dict[str, Any]:
    """``airflow dags test certiverse_nightly`` twice, a simulated day apart."""
    tenant = Tenant.generate("small", seed=42)
    app = SimulatorApp(tenant)
    warehouse = airflow["work"] / "warehouse.duckdb"
    states = []
    with serve(app) as url:
        env = orchestrator_env("airflow", **airflow["settings"], DESTINATION__DUCKDB__CREDENTIALS=str(warehouse),
                               SOURCES__CERTIVERSE__BASE_URL=url, SOURCES__CERTIVERSE__API_TOKEN=app.token)
        for night in range(2):
            if night:
                tenant.advance_day()
            done = dags_test(env, "certiverse_nightly")
            assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
            states.append(task_states(airflow["home"], "certiverse_nightly"))
            modes = vouchers_state(RunContext.from_config(
                "duckdb", str(warehouse), pipelines_dir=str(airflow["work"] / "dlt" / "pipelines")).pipeline)
            states[-1]["mode"] = modes["mode"]
    return {"tenant": tenant, "warehouse": warehouse, "states": states,
            "pipelines_dir": airflow["work"] / "dlt" / "pipelines"}


# One test for the two nights, the checks below its parts: the nights are the costly part, and a
# pytest worker of their own would have to make them again.
def test_two_nights_through_the_dag_each_task_once_a_nightly_read_and_the_warehouse_exact(tmp_path):
    nights = two_nights(airflow_home(tmp_path))
    each_task_ran_once_and_the_second_night_read_nightly(nights)
    the_warehouse_equals_the_simulators_tenant_and_the_copy_is_published(nights)


def each_task_ran_once_and_the_second_night_read_nightly(nights):
    first, second = nights["states"]
    for night in (first, second):
        assert {task: night[task] for task in ("load", "transform", "publish")} == {
            "load": ("success", 1), "transform": ("success", 1), "publish": ("success", 1)}
    assert (first["mode"], second["mode"]) == ("full", "nightly")


def the_warehouse_equals_the_simulators_tenant_and_the_copy_is_published(nights):
    context = RunContext.from_config("duckdb", str(nights["warehouse"]), pipelines_dir=str(nights["pipelines_dir"]))
    for resource in RESOURCES:
        assert differences(context, resource, nights["tenant"].records(resource)) == [], resource
    with duckdb.connect(str(nights["warehouse"].with_name("warehouse_published.duckdb")), read_only=True) as con:
        relations = {name for (name,) in con.execute("select table_name from information_schema.tables").fetchall()}
        current = con.execute("select count(*) from vouchers").fetchone()[0]
    assert set(MARTS) <= relations
    assert current == len(nights["tenant"].records("vouchers"))


def test_an_api_failure_is_retried_and_a_refused_token_is_not(small_tenant_template, tmp_path):
    airflow = airflow_home(tmp_path / "airflow")
    app = SimulatorApp(small_tenant_template)
    common = {**airflow["settings"], "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "w.duckdb"),
              "DLT_DATA_DIR": str(tmp_path / "dlt"), "SOURCES__CERTIVERSE__RETRY_BUDGET": "0"}
    unreachable = dags_test(orchestrator_env("airflow", **common, SOURCES__CERTIVERSE__BASE_URL="http://127.0.0.1:9",
                                             SOURCES__CERTIVERSE__API_TOKEN=app.token), "certiverse_retry_probe")
    after_api_failure = task_states(airflow["home"], "certiverse_retry_probe")
    with serve(app) as url:
        refused = dags_test(orchestrator_env("airflow", **common, SOURCES__CERTIVERSE__BASE_URL=url,
                                             SOURCES__CERTIVERSE__API_TOKEN="not-the-right-one"),
                            "certiverse_retry_probe")
    after_refused_token = task_states(airflow["home"], "certiverse_retry_probe")

    assert after_api_failure["load"] == ("failed", 2)  # exit 4: tried again after retry_delay
    assert after_refused_token["load"] == ("failed", 1)  # exit 3: failing the same way again helps nobody
    for states in (after_api_failure, after_refused_token):
        assert states["transform"][0] == states["publish"][0] == "upstream_failed"
    assert "exited 4" in unreachable.stdout + unreachable.stderr
    assert "exited 3" in refused.stdout + refused.stderr and "refused the token" in refused.stdout + refused.stderr
