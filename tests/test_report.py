"""`certiverse report` and `pipelines.reporting.frames.mart`: the page draws what the marts hold, and fetches nothing.

Expected numbers are read from the marts with SQL (or pandas) here, never copied:
the page must show the same numbers the marts do.
"""

from __future__ import annotations

import datetime as dt
import decimal
import html
import itertools
import re
from collections import Counter, defaultdict
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from certiverse_warehouse.pipelines.reporting.charts import nice_ticks
from certiverse_warehouse.pipelines.cli import main
from certiverse_warehouse.pipelines.reporting.frames import mart
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.pipelines.reporting.report import (
    CALENDAR_AFTER,
    IDLE_DAYS,
    MAX_BARS,
    TOP_IDLE,
    ReportData,
    expiry_chart,
    read_report_data,
    render_report,
    write_report,
)
from certiverse_warehouse.pipelines.reporting import headlines
from certiverse_warehouse.pipelines.transform import run_transforms
from certiverse_warehouse.simulator import SimulatorApp, Tenant, serve

CHARTS = ("program-utilization", "partner-utilization", "redemptions", "expiry-calendar", "expiry-upcoming",
          "idle-purchases")
STATUS_COLUMNS = {
    "used": "vouchers_used",
    "redeemable": "vouchers_assigned_unused + vouchers_reserved + vouchers_unassigned",
    "expired_unused": "vouchers_expired_unused",
    "deactivated": "vouchers_deactivated",
}


# -- a loaded warehouse and its page -------------------------------------------------------------


@pytest.fixture(scope="session")
def tenant(small_tenant_template: Tenant) -> Tenant:
    return small_tenant_template


@pytest.fixture(scope="session")
def warehouse(tenant: Tenant, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("report")
    files = {"duckdb": str(root / "w.duckdb"), "pipelines": str(root / "p")}
    pipeline = RunContext.from_config("duckdb", files["duckdb"], pipelines_dir=files["pipelines"])
    app = SimulatorApp(tenant)
    with serve(app) as url:
        run_load(pipeline, {"base_url": url, "api_token": app.token}, as_of=tenant.now())
    run_transforms(pipeline, tenant.today)
    return {"pipeline": pipeline, "root": root, **files}


@pytest.fixture(scope="session")
def page(warehouse: dict[str, Any]) -> str:
    return write_report(warehouse["pipeline"], warehouse["root"] / "report.html").read_text()


@pytest.fixture(scope="session")
def charts(page: str) -> dict[str, list[dict[str, str]]]:
    parser = Marks()
    parser.feed(page)
    return parser.charts


class Marks(HTMLParser):
    """Per ``data-chart`` element, the attributes of every element in it that carries a ``data-*`` attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, list[dict[str, str]]] = {}
        self.open: tuple[str, str] | None = None  # (tag, chart) being read

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "data-chart" in values:
            self.open = (tag, values["data-chart"])
            self.charts[values["data-chart"]] = []
        elif self.open and any(k.startswith("data-") for k in values):
            self.charts[self.open[1]].append({"tag": tag, **values})

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self.open and tag == self.open[0]:
            self.open = None


def query(pipeline: Any, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a statement; ``{name}`` stands for the qualified table ``name``."""
    with pipeline.sql_client() as client:
        names = {t: client.make_qualified_table_name(t) for t in re.findall(r"\{(\w+)\}", sql)}
        return [tuple(row) for row in client.execute_sql(sql.format(**names)) or ()]


def month(day: Any) -> str:
    return f"{day:%Y-%m}"


# -- the page ---------------------------------------------------------------------------------


def test_report_draws_every_chart(charts: dict[str, list[dict[str, str]]], page: str) -> None:
    assert set(CHARTS) <= charts.keys()
    for chart in CHARTS:
        assert charts[chart], f"{chart} has no marks"
    for chart in ("program-utilization", "partner-utilization", "redemptions", "expiry-calendar"):
        assert re.search(rf'<svg id="chart-{chart}" data-chart="{chart}"', page)


@pytest.mark.parametrize("mart_name, chart", [("program_utilization", "program-utilization"),
                                               ("partner_utilization", "partner-utilization")])
def test_utilization_bars_are_the_mart_counts(
    warehouse: dict[str, Any], charts: dict[str, list[dict[str, str]]], mart_name: str, chart: str
) -> None:
    name = mart_name.split("_")[0] + "_name"
    rows = query(warehouse["pipeline"], f"select {name}, vouchers_issued, utilization_rate, "
                 f"{', '.join(STATUS_COLUMNS.values())} from {{{mart_name}}} where vouchers_issued > 0")
    expected = {
        r[0]: {"issued": str(r[1]), "rate": f"{r[2]:.4f}", **{s: str(n) for s, n in zip(STATUS_COLUMNS, r[3:])}}
        for r in rows
    }
    drawn: dict[str, dict[str, str]] = {}
    for mark in charts[chart]:
        if "data-label" in mark:
            label = mark["data-label"]
            drawn[label] = {"issued": mark["data-issued"], "rate": mark["data-value"]}
        elif "data-series" in mark:
            drawn[label][mark["data-series"]] = mark["data-value"]
    assert 0 < len(expected) <= MAX_BARS
    assert drawn == expected


def test_redemption_columns_count_used_vouchers_per_month(
    warehouse: dict[str, Any], charts: dict[str, list[dict[str, str]]]
) -> None:
    used_on = query(warehouse["pipeline"],
                    "select used_on from {voucher_status} where voucher_status = 'used' and used_on is not null")
    expected = Counter(month(day) for (day,) in used_on)
    columns = [m for m in charts["redemptions"] if m["tag"] == "g"]
    drawn = {c["data-month"]: int(c["data-value"]) for c in columns}
    assert expected and {m: n for m, n in drawn.items() if n} == dict(expected)
    months = [dt.date.fromisoformat(c["data-month"] + "-01") for c in columns]
    gaps = [(b.year - a.year) * 12 + b.month - a.month for a, b in itertools.pairwise(months)]
    assert set(gaps) == {1}, "a month is missing or repeated"


def test_expiry_columns_are_the_calendar_value_per_month(
    warehouse: dict[str, Any], charts: dict[str, list[dict[str, str]]]
) -> None:
    rows = query(warehouse["pipeline"], "select expiry_month, value_expiring, value_expired from {expiry_calendar}")
    expected: dict[str, list[decimal.Decimal]] = defaultdict(lambda: [decimal.Decimal(0), decimal.Decimal(0)])
    for day, value, expired in rows:
        expected[month(day)][0] += decimal.Decimal(str(value))
        expected[month(day)][1] += decimal.Decimal(str(expired))
    columns = [m for m in charts["expiry-calendar"] if m["tag"] == "g"]
    drawn = {c["data-month"]: [decimal.Decimal(c["data-value"]), decimal.Decimal(c["data-value-expired"])]
             for c in columns if c["data-vouchers"] != "0"}
    assert expected and drawn == dict(expected)
    # each column's two parts (expired, still at risk) stack up to the month's value
    parts = [float(m["data-value"]) for m in charts["expiry-calendar"] if m["tag"] == "rect"]
    assert sum(parts) == pytest.approx(float(sum(v for v, _ in expected.values())), abs=0.01)


def test_upcoming_table_lists_the_next_months_of_the_calendar(
    warehouse: dict[str, Any], charts: dict[str, list[dict[str, str]]], tenant: Tenant
) -> None:
    start = tenant.today.replace(day=1)
    rows = query(warehouse["pipeline"], "select expiry_month from {expiry_calendar}")
    expected = sorted({month(d) for (d,) in rows if start <= d < start.replace(year=start.year + 1)})
    assert expected and [m["data-month"] for m in charts["expiry-upcoming"]] == expected


def test_idle_table_lists_purchases_with_most_idle_redeemable_value(
    warehouse: dict[str, Any], charts: dict[str, list[dict[str, str]]], tenant: Tenant
) -> None:
    purchases = mart("voucher_utilization", warehouse["duckdb"])
    last_use = mart("voucher_status", warehouse["duckdb"]).groupby("purchase_id")["used_on"].max()
    purchases["last_used_on"] = purchases["purchase_id"].map(last_use)
    purchases["redeemable"] = (purchases["vouchers_assigned_unused"] + purchases["vouchers_reserved"]
                               + purchases["vouchers_unassigned"])
    cutoff = pd.Timestamp(tenant.today - dt.timedelta(days=IDLE_DAYS))
    idle = purchases[(purchases["redeemable"] > 0)
                     & (purchases["last_used_on"].isna() | (purchases["last_used_on"] < cutoff))]
    top = idle.sort_values(["value_redeemable", "redeemable", "purchase_code"],
                           ascending=[False, False, True]).head(TOP_IDLE)
    drawn = [(m["data-purchase-code"], m["data-value"], int(m["data-vouchers"])) for m in charts["idle-purchases"]]
    expected = [(r.purchase_code, f"{r.value_redeemable:.2f}", r.redeemable) for r in top.itertuples()]
    assert len(expected) == TOP_IDLE and drawn == expected


def test_headlines_lead_the_page(warehouse: dict[str, Any], page: str, tenant: Tenant) -> None:
    first_chart = page.index("<svg")
    for line in headlines(warehouse["pipeline"], tenant.today).sentences():
        assert 0 < page.index(html.escape(line)) < first_chart


def test_report_fetches_nothing(page: str) -> None:
    assert not re.search(r"https?:|//[a-z0-9]", page, re.IGNORECASE)
    for fetching in ("<script", "<link", "<img", "<iframe", "@import", "url(", "src="):
        assert fetching not in page.lower()


# -- parts drawn from hand-made data -----------------------------------------------------------


def test_expiry_months_beyond_the_drawn_window_are_summed_in_a_caption(tenant: Tenant) -> None:
    as_of = tenant.today
    far = dt.date(as_of.year + CALENDAR_AFTER // 12 + 2, 1, 1)
    calendar = {as_of.replace(day=1): (3, 0, 1, 0, 30.0, 0.0), far: (7, 0, 0, 0, 70.5, 0.0)}
    data = ReportData(as_of, as_of, [], [], [], {}, calendar, [], "certiverse", "duckdb")
    svg, caption = expiry_chart(data)
    assert f'data-month="{month(far)}"' not in svg and f'data-month="{month(as_of)}"' in svg
    assert "7 vouchers worth 70.50" in caption
    assert render_report(data).count("<svg") == 3  # programs, partners and the calendar; no redemptions yet


@pytest.mark.parametrize("peak", [0.4, 1, 7, 96, 208, 50_921.5])
def test_axis_ticks_are_round_and_cover_the_peak(peak: float) -> None:
    ticks = nice_ticks(peak)
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert ticks[0] == 0 and ticks[-1] >= peak and len(steps) == 1
    mantissa = f"{steps.pop():e}".split("e")[0]
    assert float(mantissa) in (1, 2, 2.5, 5)


# -- the command -------------------------------------------------------------------------------


def test_report_command_writes_the_page(warehouse: dict[str, Any], tmp_path: Path) -> None:
    output = tmp_path / "out" / "certiverse_report.html"
    code = main(["report", "--duckdb-file", warehouse["duckdb"], "--pipelines-dir", warehouse["pipelines"],
                 "--output", str(output)])
    assert code == 0
    assert all(f'data-chart="{chart}"' in output.read_text() for chart in CHARTS)


def test_report_as_of_moves_the_windows(warehouse: dict[str, Any], tenant: Tenant, tmp_path: Path) -> None:
    later = tenant.today + dt.timedelta(days=45)
    output = tmp_path / "later.html"
    assert main(["report", "--duckdb-file", warehouse["duckdb"], "--pipelines-dir", warehouse["pipelines"],
                 "--output", str(output), "--as-of", later.isoformat()]) == 0
    text = output.read_text()
    assert f"As of {later} (marts built for {tenant.today})" in text
    assert read_report_data(warehouse["pipeline"], later).idle != read_report_data(warehouse["pipeline"]).idle


def test_report_without_marts_asks_for_a_transform(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "report.html"
    code = main(["report", "--duckdb-file", str(tmp_path / "empty.duckdb"), "--pipelines-dir", str(tmp_path / "p"),
                 "--output", str(output)])
    assert code == 1
    assert "certiverse transform" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.postgres
def test_report_reads_the_same_numbers_on_postgres(
    warehouse: dict[str, Any], tenant: Tenant, postgres_server: Any, tmp_path: Path
) -> None:
    dsn = postgres_server.create_database("certiverse_report")
    pipeline = RunContext.from_config("postgres", dsn, pipelines_dir=str(tmp_path / "p"))
    app = SimulatorApp(tenant)
    with serve(app) as url:
        run_load(pipeline, {"base_url": url, "api_token": app.token}, as_of=tenant.now())
    run_transforms(pipeline, tenant.today)
    on_postgres, on_duckdb = read_report_data(pipeline), read_report_data(warehouse["pipeline"])
    assert on_postgres.destination == "postgres"
    for part in ("as_of", "headlines", "programs", "partners", "redemptions", "calendar", "idle"):
        assert normalised(getattr(on_postgres, part)) == normalised(getattr(on_duckdb, part)), part
    assert render_report(on_postgres).count("<svg") == 4
    frame = mart("expiry_calendar", destination="postgres", credentials=dsn)
    assert len(frame) == query(pipeline, "select count(*) from {expiry_calendar}")[0][0] > 0


def normalised(value: Any) -> Any:
    """Rows as both engines compare: numbers as floats to cents, dates without times."""
    if isinstance(value, dict):
        return {normalised(k): normalised(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalised(v) for v in value]
    if isinstance(value, (float, decimal.Decimal)):
        return round(float(value), 4)
    if isinstance(value, dt.datetime):
        return value.date()
    return value


# -- marts as DataFrames -----------------------------------------------------------------------


def test_mart_returns_every_row_and_column(warehouse: dict[str, Any]) -> None:
    frame = mart("voucher_expiry", warehouse["duckdb"])
    ids = query(warehouse["pipeline"], "select voucher_id from {voucher_expiry}")
    with warehouse["pipeline"].sql_client() as client, client.execute_query(
        f"select * from {client.make_qualified_table_name('voucher_expiry')} where 1 = 0"
    ) as cursor:
        columns = [d[0] for d in cursor.description]
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == columns
    assert sorted(frame["voucher_id"]) == sorted(i for (i,) in ids) and len(ids) > 0


def test_mart_refuses_a_missing_file_without_creating_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        mart("voucher_expiry", str(tmp_path / "typo.duckdb"))
    assert not (tmp_path / "typo.duckdb").exists()
