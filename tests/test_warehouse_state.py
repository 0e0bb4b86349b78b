"""Each warehouse has its own local state: warehouses used in turn from one pipelines folder borrow nothing
from each other and warn about nothing; the run context is the one place that says which warehouse."""

from __future__ import annotations

import json
import logging

import pytest

from certiverse_warehouse.pipelines.cli import EXIT_OK, EXIT_STALE, main
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from tests.helpers import differences

# As in the nightly tests: a cap and a page size under which the small tenant plans like a big one,
# so that a second load of a warehouse is a nightly read when (and only when) its own state is there.
CAP, PAGE = 400, 20


class Records(logging.Handler):
    """Every record a logger passes on, kept."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def dlt_warnings():
    """The warnings dlt logs through its own logger (it does not propagate, so caplog misses them)."""
    records = Records()
    logger = logging.getLogger("dlt")
    logger.addHandler(records)
    yield records.records
    logger.removeHandler(records)


def load_args(url, warehouse, pipelines) -> list[str]:
    return ["-v", "load", "--json", "--base-url", url, "--duckdb-file", str(warehouse), "--pipelines-dir",
            str(pipelines)]


def test_two_warehouses_used_in_turn_from_one_pipelines_folder_keep_their_own_state_and_warn_nothing(
    small_tenant, simulator, tmp_path, monkeypatch, capsys, dlt_warnings
):
    monkeypatch.setenv("SOURCES__CERTIVERSE__RECORD_CAP", str(CAP))
    first, second, pipelines = tmp_path / "first.duckdb", tmp_path / "second.duckdb", tmp_path / "p"
    summaries = []
    with simulator(small_tenant, cap=CAP, page_size=PAGE) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        for night, warehouse in enumerate((first, second, first, second, first)):
            if night:
                small_tenant.advance_day()
            assert main(load_args(url, warehouse, pipelines)) == EXIT_OK
            captured = capsys.readouterr()
            summaries.append(json.loads(captured.out))
            # -v shows every log line of the project and of the libraries: none is a warning
            assert " WARNING " not in captured.err, captured.err
    assert [w.getMessage() for w in dlt_warnings if w.levelno >= logging.WARNING] == []
    # Each warehouse's first load reads everything; every later one is a nightly read of its own state,
    # the rolling re-check counting that warehouse's nights only (the night the next run takes is shown).
    nightly = "nightly read, rolling re-check night"
    assert [s["mode"] for s in summaries] == ["full read", "full read", f"{nightly} 1", f"{nightly} 1", f"{nightly} 2"]
    assert all(s["full_read_reason"] is None for s in summaries)
    assert len({path.name for path in pipelines.iterdir() if path.is_dir()}) == 2
    context = RunContext.from_config("duckdb", str(first), pipelines_dir=str(pipelines))
    for resource in ("partners", "programs"):
        assert differences(context, resource, small_tenant.records(resource)) == []


def test_a_failed_postgres_try_leaves_nothing_to_the_next_duckdb_run(small_tenant_template, simulator, tmp_path,
                                                                      monkeypatch, capsys, dlt_warnings):
    pipelines = tmp_path / "p"
    with simulator(small_tenant_template) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        # nothing listens on port 1: the load fails at the warehouse
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", "postgresql://loader:secret@127.0.0.1:1/warehouse")
        assert main(["load", "--destination", "postgres", "--base-url", url, "--pipelines-dir", str(pipelines)]) != 0
        capsys.readouterr()
        assert main(load_args(url, tmp_path / "w.duckdb", pipelines)) == EXIT_OK
    captured = capsys.readouterr()
    assert "postgres" not in captured.err and " WARNING " not in captured.err, captured.err
    assert [w.getMessage() for w in dlt_warnings if w.levelno >= logging.WARNING] == []
    assert json.loads(captured.out)["mode"] == "full read"


def test_status_of_a_file_never_loaded_says_nothing_about_reads(small_tenant_template, simulator, tmp_path,
                                                                 monkeypatch, capsys):
    pipelines = tmp_path / "p"
    with simulator(small_tenant_template) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        assert main(["load", "--base-url", url, "--duckdb-file", str(tmp_path / "loaded.duckdb"),
                     "--pipelines-dir", str(pipelines)]) == EXIT_OK
    capsys.readouterr()
    assert main(["status", "--duckdb-file", str(tmp_path / "never.duckdb"), "--pipelines-dir",
                 str(pipelines)]) == EXIT_STALE
    out = capsys.readouterr().out
    assert out.startswith("NEVER LOADED"), out
    assert not any(word in out for word in ("voucher read", "nightly", "full read", "re-check")), out
    assert main(["status", "--json", "--duckdb-file", str(tmp_path / "never.duckdb"), "--pipelines-dir",
                 str(pipelines)]) == EXIT_STALE
    status = json.loads(capsys.readouterr().out)
    assert (status["last_mode"], status["recheck_night"], status["last_full_at"]) == (None, None, None)


def test_status_reads_what_was_loaded_from_the_warehouse_whatever_the_local_state(small_tenant_template, simulator,
                                                                                   tmp_path, capsys):
    warehouse = tmp_path / "w.duckdb"
    with simulator(small_tenant_template) as (app, url):
        run_load(RunContext.from_config("duckdb", str(warehouse), pipelines_dir=str(tmp_path / "loader")),
                 {"base_url": url, "api_token": app.token})
    # another machine, with no local state of this warehouse
    assert main(["status", "--json", "--duckdb-file", str(warehouse), "--pipelines-dir",
                 str(tmp_path / "elsewhere")]) == EXIT_OK
    status = json.loads(capsys.readouterr().out)
    assert (status["last_mode"], status["recheck_night"]) == ("full", 0)
    assert status["state_dir"].startswith(str(tmp_path / "elsewhere"))


def test_each_warehouse_gets_a_folder_of_its_own_named_for_it(tmp_path):
    pipelines = str(tmp_path / "p")
    here = RunContext.from_config("duckdb", str(tmp_path / "a" / "w.duckdb"), pipelines_dir=pipelines)
    there = RunContext.from_config("duckdb", str(tmp_path / "b" / "w.duckdb"), pipelines_dir=pipelines)
    again = RunContext.from_config("duckdb", str(tmp_path / "b" / "." / "w.duckdb"), pipelines_dir=pipelines)
    dsn = "postgresql://u:secret@db.example:5433/sales"
    database = RunContext.from_config("postgres", dsn, pipelines_dir=pipelines)
    other = RunContext.from_config("postgres", dsn, pipelines_dir=pipelines, dataset="vouchers")
    folders = [c.state_dir for c in (here, there, database, other)]
    assert len(set(folders)) == 4 and again.state_dir == there.state_dir
    assert all(folder.parent == tmp_path / "p" for folder in folders)
    assert here.state_dir.name.startswith("duckdb-w-") and database.state_dir.name.startswith("postgres-sales-")
    assert "secret" not in database.warehouse.name and "secret" not in str(database.state_dir)
    # dlt's pipeline keeps its name: the state rows an earlier version stored in the warehouse are this pipeline's
    assert here.pipeline.pipeline_name == "certiverse" and here.pipeline.pipelines_dir == str(here.state_dir)


def test_a_warehouse_an_earlier_version_loaded_goes_on_nightly_from_its_new_folder(small_tenant, simulator,
                                                                                   tmp_path):
    """Earlier versions kept local state in <pipelines>/certiverse/ and stored it in the warehouse under the
    pipeline's name; the folder per warehouse starts empty, so what carries a warehouse over is that name."""
    warehouse = tmp_path / "w.duckdb"
    with simulator(small_tenant, cap=CAP, page_size=PAGE) as (app, url):
        config = {"base_url": url, "api_token": app.token, "record_cap": CAP}
        run_load(RunContext.from_config("duckdb", str(warehouse), pipelines_dir=str(tmp_path / "before")), config,
                 as_of=small_tenant.now())
        small_tenant.advance_day()
        upgraded = RunContext.from_config("duckdb", str(warehouse), pipelines_dir=str(tmp_path / "after"))
        result = run_load(upgraded, config, as_of=small_tenant.now())
    with upgraded.sql_client() as client:
        names = client.execute_sql("select distinct pipeline_name from _dlt_pipeline_state")
    assert names == [("certiverse",)]
    assert result.full_read_reason is None and result.mode.startswith("nightly read")
    # read whole every night (vouchers settled before tonight may wait for their rolling re-check night)
    for resource in ("partners", "programs", "purchases"):
        assert differences(upgraded, resource, small_tenant.records(resource)) == [], resource
