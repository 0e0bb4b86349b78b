"""kill -9 at several points of a run (the first included): the next run completes it, exactly."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from tests.helpers import current_rows, differences

CHILD = Path(__file__).with_name("crash_child.py")
ROOT = CHILD.parent.parent


def crash(url, token, duckdb_file, pipelines_dir, as_of: dt.datetime, kill_at: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(CHILD), url, token, duckdb_file, pipelines_dir, as_of.isoformat(), kill_at],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, f"child did not die at {kill_at}: {done.returncode}\n{done.stderr}"


def settled_in_api(tenant) -> set[str]:
    now = tenant.now()
    return {
        v["id"] for v in tenant.records("vouchers")
        if v["isUsed"] or not v["isActive"]
        or dt.datetime.fromisoformat(v["expirationDateUtc"].replace("Z", "+00:00")) < now
    }


def assert_no_duplicate_keys(pipeline) -> None:
    for table in ("partners", "programs", "purchases", "vouchers"):
        current_rows(pipeline, table)  # asserts one current row per id
    with pipeline.sql_client() as client:
        dupes = client.execute_sql("select id, _dlt_valid_from from vouchers group by 1, 2 having count(*) > 1")
    assert dupes == []


@pytest.mark.parametrize("kill_at", ["extract", "normalize", "load", "merge", "committed"])
@pytest.mark.parametrize("first_run", [True, False], ids=["first-run", "nightly"])
def test_a_killed_run_is_completed_by_the_next_one(kill_at, first_run, small_tenant, simulator, tmp_path):
    duckdb_file, pipelines_dir = str(tmp_path / "w.duckdb"), str(tmp_path / "p")
    with simulator(small_tenant, page_size=50) as (app, url):
        if not first_run:
            run_load(RunContext.from_config("duckdb", duckdb_file, pipelines_dir=pipelines_dir),
                     {"base_url": url, "api_token": app.token}, as_of=small_tenant.now())
            small_tenant.advance_day()
        crash(url, app.token, duckdb_file, pipelines_dir, small_tenant.now(), kill_at)
        # Past extract the killed run left a package behind that the next run must finish.
        left = RunContext.from_config("duckdb", duckdb_file, pipelines_dir=pipelines_dir)
        assert left.pipeline.has_pending_data == (kill_at != "extract")
        settled = settled_in_api(small_tenant)
        small_tenant.advance_day()
        pipeline = RunContext.from_config("duckdb", duckdb_file, pipelines_dir=pipelines_dir)
        run_load(pipeline, {"base_url": url, "api_token": app.token}, as_of=small_tenant.now())
    assert not pipeline.pipeline.has_pending_data
    assert_no_duplicate_keys(pipeline)
    for resource in ("partners", "programs", "purchases"):
        assert differences(pipeline, resource, small_tenant.records(resource)) == []
    problems = differences(pipeline, "vouchers", small_tenant.records("vouchers"), limit=10_000)
    assert not any("missing" in p or "not in the API" in p for p in problems), problems[:3]
    assert {p.split()[1] for p in problems} <= settled
