"""What `load`, `transform` and `run` tell: the whole command's seconds and where they went, dbt's models and
tests (and its artifacts on disk), the headline figures as numbers, a progress line; raw library log lines
only with -v."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from certiverse_warehouse.pipelines.cli import EXIT_OK, EXIT_STALE, main
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.pipelines.reporting.progress import Progress
from certiverse_warehouse.pipelines.transform import TRANSFORMS_DIR, TransformError, run_transforms

MODELS = sorted(path.stem for path in (TRANSFORMS_DIR / "models").glob("*/*.sql"))
# phases every run has (pipelines/phases.py names them)
RUN_PHASES = {"startup", "align", "snapshot", "read", "normalize", "load", "counter_check", "row_counts",
              "dbt_parse", "swap", "dbt_models", "dbt_tests", "headlines", "publish"}


def test_run_json_gives_the_whole_commands_seconds_its_phases_dbt_and_the_headline_figures(
    small_tenant_template, simulator, tmp_path, monkeypatch, capsys
):
    tenant = small_tenant_template
    with simulator(tenant) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        code = main(["run", "--json", "--base-url", url, "--as-of", tenant.today.isoformat(),
                     "--duckdb-file", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p")])
    assert code == EXIT_OK
    summary = json.loads(capsys.readouterr().out)

    phases, seconds = summary["phases"], summary["seconds"]
    assert set(phases) == RUN_PHASES
    # measured one by one, not derived: they add up to the command's time but for the moments between them
    assert abs(sum(phases.values()) - seconds) <= max(0.5, 0.03 * seconds), (sum(phases.values()), seconds)

    dbt = summary["dbt"]
    assert dbt["as_of"] == tenant.today.isoformat()
    assert dbt["models"] == {"run": len(MODELS), "passed": len(MODELS), "failed": 0, "skipped": 0}
    assert dbt["tests"]["run"] > 0 and dbt["tests"]["failed"] == dbt["tests"]["skipped"] == 0
    assert dbt["tests"]["passed"] + dbt["tests"]["warned"] == dbt["tests"]["run"]
    order = list(dbt["model_seconds"])  # in build order
    assert set(order) == set(MODELS) and order.index("stg_vouchers") < order.index("voucher_status")

    # dbt's own artifacts of this build, in the warehouse's folder: run_results.json lists every model and
    # every test of the manifest
    artifacts = Path(dbt["artifacts"])
    context = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    assert artifacts == context.dbt_dir / "dataset"
    manifest = json.loads((artifacts / "manifest.json").read_text())
    run_results = json.loads((artifacts / "run_results.json").read_text())
    built = {uid for uid, node in manifest["nodes"].items() if node["resource_type"] in ("model", "test")}
    assert {r["unique_id"] for r in run_results["results"]} == built
    assert len(built) == dbt["models"]["run"] + dbt["tests"]["run"]
    assert {manifest["nodes"][uid]["name"] for uid in built if uid.startswith("model.")} == set(MODELS)
    assert {r["status"] for r in run_results["results"]} <= {"success", "pass", "warn"}

    figures = summary["headlines"]
    vouchers = tenant.records("vouchers")
    assert figures["vouchers"] == len(vouchers) and figures["purchases"] == len(tenant.records("purchases"))
    assert figures["used"] == sum(1 for v in vouchers if v["isUsed"])
    assert figures["built_for"] == tenant.today.isoformat()
    assert isinstance(figures["breakage"], float) and figures["breakage"] > 0
    assert summary["published"]["relations"]


def test_load_and_transform_summaries_say_the_whole_time_and_its_phases(small_tenant_template, simulator, tmp_path,
                                                                         monkeypatch, capsys):
    warehouse = ["--duckdb-file", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p")]
    with simulator(small_tenant_template) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        assert main(["load", "--base-url", url, *warehouse]) == EXIT_OK
    load = capsys.readouterr().out
    assert re.match(r"Done in \d+\.\ds \(full read\)\.\nPhases: startup [\d.]+s, align [\d.]+s, snapshot [\d.]+s, "
                    r"read [\d.]+s, normalize [\d.]+s, load [\d.]+s, counter check [\d.]+s, row counts [\d.]+s\n",
                    load), load
    assert main(["transform", "--json", *warehouse]) == EXIT_OK
    transform = json.loads(capsys.readouterr().out)
    assert set(transform["phases"]) == {"startup", "dbt_parse", "swap", "dbt_models", "dbt_tests", "headlines",
                                        "publish"}
    assert transform["dbt"]["models"]["passed"] == len(MODELS)
    assert "rows" not in transform and transform["headlines"]["vouchers"] > 0


def test_a_failed_build_leaves_run_results_naming_what_failed(small_tenant_template, simulator, tmp_path):
    context = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    with simulator(small_tenant_template) as (app, url):
        run_load(context, {"base_url": url, "api_token": app.token})
    project = tmp_path / "transforms"
    shutil.copytree(TRANSFORMS_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    [broken] = project.glob("models/*/expiry_calendar.sql")
    broken.write_text('select no_such_column from {{ ref("stg_vouchers") }}\n')
    with pytest.raises(TransformError):
        run_transforms(context, small_tenant_template.today, project_dir=project)
    results = json.loads((context.dbt_dir / "dataset" / "run_results.json").read_text())["results"]
    status = {r["unique_id"].rsplit(".", 1)[-1]: r["status"] for r in results}
    assert status["expiry_calendar"] == "error" and status["voucher_status"] == "success"


def test_the_progress_line_shows_dlts_steps_and_rows_while_a_load_runs(small_tenant_template, simulator, tmp_path):
    lines = io.StringIO()
    progress = Progress(interval=0.05, stream=lines)
    context = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"),
                                     progress=progress)
    with simulator(small_tenant_template, latency_ms=20) as (app, url):
        run_load(context, {"base_url": url, "api_token": app.token})
    text = lines.getvalue()
    assert re.search(r"^\[\d+s\] Extract certiverse: .*partners [\d,]+", text, re.MULTILINE), text
    # every step's ticker stopped with its step
    assert not [t for t in threading.enumerate() if t.name == "certiverse-progress"]


# A command in its own process, as a scheduler runs it, in which dlt's own logger, another library's logger and
# Python's warnings each say something while the command runs.
NOISY = r"""
import logging, sys, warnings
from dlt.common import logger
import certiverse_warehouse.pipelines.reporting.status as status
from certiverse_warehouse.pipelines.cli import main

real = status.pipeline_status

def noisy(*args, **kwargs):
    logger.warning("dlt says something")
    logging.getLogger("duckdb").warning("a library says something")
    warnings.warn("a library warns about something")
    return real(*args, **kwargs)

status.pipeline_status = noisy
sys.exit(main(sys.argv[1:]))
"""


def test_library_log_lines_appear_only_with_verbose(tmp_path):
    def status(*flags: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", NOISY, *flags, "status", "--duckdb-file", str(tmp_path / "w.duckdb"),
             "--pipelines-dir", str(tmp_path / "p")],
            capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false"},
        )
        assert done.returncode == EXIT_STALE, done.stderr
        return done.stderr

    quiet, verbose = status(), status("-v")
    for line in ("dlt says something", "a library says something", "a library warns about something"):
        assert line not in quiet, quiet
        assert line in verbose, verbose
    assert "|[WARNING]|" in verbose  # dlt's own format, as dlt writes it
