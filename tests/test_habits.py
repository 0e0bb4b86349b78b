"""The loader against the simulator's habits (``simulator.habits``, nextLink forms): lenient in what it accepts,
strict in what it stores. Each load ends exact: the warehouse equals what the API means, in the documented types."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import respx

from certiverse_warehouse.pipelines.cli import EXIT_API, main
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.simulator import SimulatorApp
from certiverse_warehouse.simulator.app import NEXTLINK_FORMS
from certiverse_warehouse.simulator.habits import HABITS, meaning
from certiverse_warehouse.sources.certiverse import UnreadableValueError
from tests.helpers import RESOURCES, current_rows, differences

FORMS = ("bool_strings", "number_strings", "timestamp_forms", "whitespace", "bom")
MEANINGS = ("nulls", "unknown_enums", "new_fields")
PAGE = 20  # small pages: many links to follow


def exact(pipeline, tenant, habits) -> None:
    for resource in RESOURCES:
        truth = [meaning(resource, r, habits) for r in tenant.records(resource)]
        assert differences(pipeline, resource, truth) == [], resource


def column_types(context: RunContext) -> dict[str, dict[str, str]]:
    return {name: {c: col.get("data_type") for c, col in table["columns"].items()}
            for name, table in context.pipeline.default_schema.tables.items() if not name.startswith("_dlt")}


@pytest.fixture(scope="module")
def documented_types(small_tenant_template, tmp_path_factory) -> dict[str, dict[str, str]]:
    """Column types of a load of the tenant as the reference describes it."""
    from certiverse_warehouse.simulator import serve

    folder = tmp_path_factory.mktemp("clean")
    pipeline = RunContext.from_config("duckdb", str(folder / "w.duckdb"), pipelines_dir=str(folder / "p"))
    app = SimulatorApp(small_tenant_template)
    with serve(app) as url:
        run_load(pipeline, {"base_url": url, "api_token": app.token})
    return column_types(pipeline)


@pytest.mark.parametrize("habits", [FORMS, MEANINGS, HABITS], ids=["forms", "meanings", "all"])
def test_values_in_other_forms_load_exact_in_the_documented_types(
    habits, small_tenant_template, simulator, tmp_path, documented_types
):
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    with simulator(small_tenant_template, habits=habits, page_size=PAGE, nextlink_form="mixed") as (app, url):
        run_load(pipeline, {"base_url": url, "api_token": app.token})
    exact(pipeline, small_tenant_template, habits)
    loaded = column_types(pipeline)
    for table, columns in documented_types.items():
        assert {c: loaded[table].get(c) for c in columns} == columns, table
    variants = [f"{t}.{c}" for t, cols in loaded.items() for c in cols if "__v_" in c]
    assert variants == []


def test_a_night_whose_values_come_in_other_forms_adds_no_voucher_versions(small_tenant, simulator, tmp_path):
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    habits = ("bool_strings", "number_strings", "whitespace", "bom")
    as_of = small_tenant.now()
    with simulator(small_tenant, page_size=PAGE) as (app, url):
        run_load(pipeline, {"base_url": url, "api_token": app.token}, as_of=as_of)
        app.habits = SimulatorApp(small_tenant, habits=habits).habits  # the API changed its habits overnight
        # recheck_nights 1: every voucher is re-read
        second = run_load(pipeline, {"base_url": url, "api_token": app.token, "recheck_nights": 1}, as_of=as_of)
    assert second.extracted["vouchers"] == len(small_tenant.records("vouchers"))
    assert second.written["vouchers"] == 0  # the same vouchers, only sent differently
    exact(pipeline, small_tenant, habits)


def test_nights_with_every_habit_stay_exact(small_tenant, simulator, tmp_path):
    """The nightly plan reads what the warehouse stored from such answers (nulls where the reference has none
    included) and ends exact but for settled vouchers the rolling re-check has not reached yet."""
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    with simulator(small_tenant, habits=HABITS, page_size=PAGE, nextlink_form="mixed") as (app, url):
        run_load(pipeline, {"base_url": url, "api_token": app.token}, as_of=small_tenant.now())
        for _ in range(2):
            rows = current_rows(pipeline, "vouchers")
            open_before = {vid for vid, row in rows.items() if row["is_active"] and not row["is_used"]
                           and row["expiration_date_utc"] > small_tenant.now()}
            small_tenant.advance_day()
            run_load(pipeline, {"base_url": url, "api_token": app.token}, as_of=small_tenant.now())
            assert pipeline.pipeline.state["sources"]["certiverse"]["resources"]["vouchers"]["mode"] == "nightly"
            for resource in ("partners", "programs", "purchases"):
                truth = [meaning(resource, r, HABITS) for r in small_tenant.records(resource)]
                assert differences(pipeline, resource, truth) == [], resource
            truth = [meaning("vouchers", r, HABITS) for r in small_tenant.records("vouchers")]
            problems = differences(pipeline, "vouchers", truth, limit=100_000)
            assert [p for p in problems if p.split()[1] in open_before or "missing" in p or "not in" in p] == []


class Recorder(http.server.BaseHTTPRequestHandler):
    """Another origin: records every request (and its Authorization header) and answers 404."""

    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def recorder() -> Iterator[tuple[str, list]]:
    """A second server on another port, for links that point there."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), type("Seen", (Recorder,), {"seen": []}))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.RequestHandlerClass.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("form", [*NEXTLINK_FORMS, "mixed"])
def test_links_in_any_form_or_to_another_origin_are_followed_here_and_the_token_never_goes_there(
    form, small_tenant_template, simulator, tmp_path, caplog
):
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    caplog.set_level("WARNING", logger="certiverse_warehouse.sources.certiverse.client")
    with recorder() as (elsewhere, seen):
        with simulator(small_tenant_template, page_size=PAGE, nextlink_form=form, nextlink_origin=elsewhere) as (
                app, url):
            result = run_load(pipeline, {"base_url": url, "api_token": app.token})
            served = dict(app.stats)
    assert seen == []  # nothing, token or not, went to the other origin
    assert result.requests.total() == sum(served.values())  # every request went to the configured one
    exact(pipeline, small_tenant_template, ())
    said = [r for r in caplog.records if "points elsewhere" in r.getMessage()]
    # Said once when the links name the other origin; relative links name none (mixed: some queries' do).
    assert len(said) == {"relative": 0, "query": 0}.get(form, 1) or form == "mixed" and len(said) <= 1


def through_respx(app: SimulatorApp, endpoint: str | None = None, field: str = "", value: object = None):
    """The app as a respx side effect; with ``endpoint``, its last record sends ``value`` in ``field``."""
    victim = app.tenant.records(endpoint)[-1]["id"] if endpoint else None
    path = {"vouchers": "/api/vouchers", "purchases": "/api/vouchers/purchases", None: None}[endpoint]

    def handler(request: httpx.Request) -> httpx.Response:
        status, headers, body = app.handle(request.method, str(request.url), dict(request.headers), request.content)
        if status == 200 and request.url.path == path:
            payload = json.loads(body)
            for record in payload["data"]:
                if record["id"] == victim:
                    record[field] = value
            body = json.dumps(payload).encode()
        return httpx.Response(status, headers=headers, content=body)

    return handler


@pytest.mark.parametrize("endpoint, field, value", [("vouchers", "isUsed", "perhaps"),
                                                    ("purchases", "quantity", "a dozen")])
def test_an_unreadable_value_stops_the_run_naming_it_and_the_next_run_ends_exact(
    endpoint, field, value, small_tenant, tmp_path, monkeypatch, capsys
):
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    base = "http://certiverse.test"
    app = SimulatorApp(small_tenant)
    with respx.mock:
        respx.route(host="certiverse.test").mock(side_effect=through_respx(app))
        first = run_load(pipeline, {"base_url": base, "api_token": app.token})
    small_tenant.advance_day()
    victim = small_tenant.records(endpoint)[-1]["id"]
    with respx.mock:
        respx.route(host="certiverse.test").mock(side_effect=through_respx(app, endpoint, field, value))
        with pytest.raises(Exception) as caught:
            run_load(pipeline, {"base_url": base, "api_token": app.token})
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        code = main(["load", "--base-url", base, "--duckdb-file", str(tmp_path / "w.duckdb"),
                     "--pipelines-dir", str(tmp_path / "p")])
    cause = caught.value
    while cause is not None and not isinstance(cause, UnreadableValueError):
        cause = cause.__cause__ or cause.__context__
    assert isinstance(cause, UnreadableValueError)
    assert (cause.endpoint, cause.record, cause.field) == (endpoint, victim, field)
    assert code == EXIT_API
    assert f"{endpoint} record {victim}: field {field}" in capsys.readouterr().err
    with pipeline.sql_client() as client:
        loads = client.execute_sql("select load_id from _dlt_loads")
    assert sorted(r[0] for r in loads) == sorted(first.info.loads_ids)  # nothing of the failed runs was stored
    with respx.mock:
        respx.route(host="certiverse.test").mock(side_effect=through_respx(app))
        run_load(pipeline, {"base_url": base, "api_token": app.token, "recheck_nights": 1})
    exact(pipeline, small_tenant, ())
