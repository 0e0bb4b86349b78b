"""Rate limits and outages against the simulator's knobs, end to end: every load ends exact (the warehouse
equals the simulator's truth), and the run that gives up exits 4 and leaves the warehouse as it was."""

from __future__ import annotations

import io
import logging
from collections import Counter

import duckdb
import pytest

from certiverse_warehouse.pipelines.cli import EXIT_API, EXIT_OK, main
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.pipelines.reporting.progress import Progress
from certiverse_warehouse.simulator import Outage, RateLimit
from certiverse_warehouse.sources.certiverse.pacing import WAIT_NOTE
from tests.helpers import RESOURCES, differences

PER_SECOND = 5  # the limit
# Outages scaled down with the retry budget (the defaults are a 600 s budget; outages of a minute):
# the budget is ten times the outage, as the default is ten times a one-minute outage (at three times,
# a run on a busy machine once gave up: its requests also waited out the rate limit's 429s).
OUTAGE_SECONDS = 3.0
SCALED_BUDGET = 30.0


def assert_exact(context, tenant) -> None:
    for resource in RESOURCES:
        assert differences(context, resource, tenant.records(resource)) == [], resource


def warehouse_in(tmp_path) -> RunContext:
    return RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))


def served(app) -> Counter:
    """Answers the simulator gave, by status (0: a dropped connection)."""
    out: Counter = Counter()
    for (_, status), n in app.stats.items():
        out[status] += n
    return out


@pytest.mark.parametrize("retry_after", ["seconds", "date", "absent"])
def test_a_load_through_a_limit_of_5_requests_a_second_ends_exact_with_default_settings(
    small_tenant_template, simulator, tmp_path, retry_after
):
    context = warehouse_in(tmp_path)
    limit = RateLimit(PER_SECOND, retry_after=retry_after)
    with simulator(small_tenant_template, rate_limit=limit) as (app, url):
        result = run_load(context, {"base_url": url, "api_token": app.token})
    assert limit.refused > 0  # the limiter did bite: 16 workers start far above 5 a second
    assert sum(outcomes.get("429", 0) for outcomes in result.requests.as_dict().values()) == limit.refused
    assert_exact(context, small_tenant_template)


@pytest.mark.parametrize("answer", ["503", "502", "504", "drop"])
def test_an_outage_in_the_middle_of_a_load_is_ridden_out_and_the_load_ends_exact(
    small_tenant_template, simulator, tmp_path, answer
):
    context = warehouse_in(tmp_path)
    outage = Outage(OUTAGE_SECONDS, after_requests=8, answer=answer)
    with simulator(small_tenant_template, outage=outage) as (app, url):
        run_load(context, {"base_url": url, "api_token": app.token, "retry_budget": SCALED_BUDGET})
        answers = served(app)
    assert outage.over and outage.met > 0
    assert answers[0 if answer == "drop" else int(answer)] == outage.met
    assert_exact(context, small_tenant_template)


def test_a_one_minute_outage_is_ridden_out_with_default_settings(small_tenant_template, simulator, tmp_path):
    """The issue's case at its real length: an app-pool recycle answering 503 with IIS's HTML page."""
    context = warehouse_in(tmp_path)
    outage = Outage(60.0, after_requests=8, answer="503")
    with simulator(small_tenant_template, outage=outage) as (app, url):
        run_load(context, {"base_url": url, "api_token": app.token})
    assert outage.over and outage.met > 0
    assert_exact(context, small_tenant_template)


def test_an_outage_and_a_rate_limit_together_end_exact(small_tenant_template, simulator, tmp_path):
    context = warehouse_in(tmp_path)
    limit, outage = RateLimit(PER_SECOND * 2, retry_after="date"), Outage(OUTAGE_SECONDS, at_seconds=1.0)
    with simulator(small_tenant_template, rate_limit=limit, outage=outage) as (app, url):
        run_load(context, {"base_url": url, "api_token": app.token, "retry_budget": SCALED_BUDGET})
    assert limit.refused > 0 and outage.met > 0
    assert_exact(context, small_tenant_template)


def warehouse_rows(path) -> dict[str, list[tuple]]:
    """Every row of every table of the DuckDB file, sorted, by schema and table."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = con.execute("select table_schema, table_name from information_schema.tables "
                            "where table_type = 'BASE TABLE'").fetchall()
        return {f"{schema}.{table}": sorted(con.execute(f'select * from "{schema}"."{table}"').fetchall(), key=repr)
                for schema, table in names}


def test_a_run_that_gives_up_exits_4_and_leaves_the_warehouse_as_it_was(small_tenant, simulator, tmp_path,
                                                                         monkeypatch, capsys):
    warehouse, pipelines_dir = tmp_path / "w.duckdb", tmp_path / "p"
    load = ["load", "--duckdb-file", str(warehouse), "--pipelines-dir", str(pipelines_dir)]
    monkeypatch.setenv("SOURCES__CERTIVERSE__RETRY_BUDGET", "2")
    monkeypatch.setenv("SOURCES__CERTIVERSE__RETRY_BACKOFF", "0.1")
    with simulator(small_tenant) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        assert main([*load, "--base-url", url]) == EXIT_OK
        first = served(app)
        before = warehouse_rows(warehouse)
        small_tenant.advance_day()
        # The outage begins once the next run has read everything but the vouchers, and outlasts the budget.
        catalog = sum(n for (path, status), n in app.stats.items() if status == 200 and path != "/api/vouchers")
        app.outage = Outage(3600.0, after_requests=catalog + 2, answer="503")
        capsys.readouterr()
        assert main([*load, "--base-url", url]) == EXIT_API
        err = capsys.readouterr().err
        assert app.outage.met > 0 and served(app)[200] > first[200] + catalog  # some vouchers pages were read
        assert warehouse_rows(warehouse) == before
        context = RunContext.from_config("duckdb", str(warehouse), pipelines_dir=str(pipelines_dir))
        assert not context.pipeline.has_pending_data  # nothing half-extracted waits to be loaded by the next run
        app.outage = None
        assert main([*load, "--base-url", url]) == EXIT_OK
    assert "giving up after 2s of retries (retry_budget); last problem: HTTP 503" in err
    assert err.strip().splitlines()[-1].startswith("error: ")
    assert_exact(RunContext.from_config("duckdb", str(warehouse), pipelines_dir=str(pipelines_dir)), small_tenant)


def test_the_progress_line_says_what_the_run_waits_for():
    stream = io.StringIO()
    note = "the API is unavailable (HTTP 503, text/html) for 12s: waiting for it, next try in 8s"
    progress = Progress(interval=3600, stream=stream)
    with progress("Extract certiverse"):
        logging.getLogger("certiverse_warehouse.sources.certiverse.pacing").warning(note, extra={WAIT_NOTE: True})
        logging.getLogger("certiverse_warehouse.sources.certiverse.client").warning("a plain warning")
        line = progress.line()
    assert line.endswith(note)
    assert stream.getvalue() == ""  # the log has said it once; the progress line repeats it, nothing prints twice
