"""`certiverse report` and `pipelines.reporting.frames.mart`: the page draws what the marts hold, and fetches nothing.

Expected numbers are read from the marts with SQL (or pandas) here, never copied:
the page must show the same numbers the marts do.
"""

from __future__ import annotations

import ast
import dataclasses
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
import yaml

from certiverse_warehouse.pipelines.reporting.charts import nice_ticks
from certiverse_warehouse.pipelines.cli import EXIT_DESTINATION, main
from certiverse_warehouse.pipelines.reporting.frames import mart
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.pipelines.reporting.report import (
    CALENDAR_AFTER,
    MARTS,
    MAX_BARS,
    TOP_IDLE,
    UPCOMING_MONTHS,
    ReportData,
    ReportError,
    expiry_chart,
    read_report_data,
    render_report,
    write_report,
)
from certiverse_warehouse.pipelines.reporting import headlines
from certiverse_warehouse.pipelines.reporting.headlines import Headlines
from certiverse_warehouse.pipelines.transform import TRANSFORMS_DIR, run_transforms
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


def test_upcoming_table_lists_every_one_of_the_next_months_with_the_marts_figures(
    warehouse: dict[str, Any], charts: dict[str, list[dict[str, str]]], tenant: Tenant, page: str
) -> None:
    start = tenant.today.replace(day=1)
    months = [month(dt.date(start.year + (start.month - 1 + i) // 12, (start.month - 1 + i) % 12 + 1, 1))
              for i in range(UPCOMING_MONTHS)]
    rows = {month(m): (str(n), f"{v:.2f}") for m, n, v in query(
        warehouse["pipeline"], "select expiry_month, vouchers_redeemable, value_redeemable from {expiry_by_month}")}
    drawn = [(r["data-month"], (r["data-vouchers"], r["data-value"])) for r in charts["expiry-upcoming"]]
    assert [m for m, _ in drawn] == months, "a month is missing or repeated"
    assert dict(drawn) == {m: rows.get(m, ("0", "0.00")) for m in months}
    assert any(v == ("0", "0.00") for _, v in drawn), "no month without expiries: the gap is not tested"
    assert "already expired" not in page


def test_idle_table_is_the_top_of_the_idle_purchases_mart(
    warehouse: dict[str, Any], charts: dict[str, list[dict[str, str]]]
) -> None:
    top = query(warehouse["pipeline"], "select purchase_code, value_redeemable, vouchers_redeemable, days_idle "
                                       f"from {{idle_purchases}} where idle_rank <= {TOP_IDLE} order by idle_rank")
    drawn = [(m["data-purchase-code"], m["data-value"], int(m["data-vouchers"]), int(m["data-days-idle"]))
             for m in charts["idle-purchases"]]
    assert len(top) == TOP_IDLE and drawn == [(code, f"{value:.2f}", n, days) for code, value, n, days in top]
    [(idle_after,)] = query(warehouse["pipeline"], "select idle_after_days from {headline_figures}")
    assert all(days > idle_after for *_, days in drawn), "a purchase used or bought in the idle period is listed"


def test_headlines_lead_the_page(warehouse: dict[str, Any], page: str) -> None:
    first_chart = page.index("<svg")
    for line in headlines(warehouse["pipeline"]).sentences():
        assert 0 < page.index(html.escape(line)) < first_chart


def test_report_fetches_nothing(page: str) -> None:
    assert not re.search(r"https?:|//[a-z0-9]", page, re.IGNORECASE)
    for fetching in ("<script", "<link", "<img", "<iframe", "@import", "url(", "src="):
        assert fetching not in page.lower()


# -- parts drawn from hand-made data -----------------------------------------------------------


def figures_for(as_of: dt.date, **values: Any) -> Headlines:
    """Headline figures of a hand-made page: zeros, the as-of date, and ``values``."""
    zero = {f.name: (decimal.Decimal(0) if "value" in f.name or "amount" in f.name else 0)
            for f in dataclasses.fields(Headlines)}
    return Headlines(**{**zero, "as_of_date": as_of, "reporting_timezone": "UTC", "idle_after_days": 90,
                        "utilization_rate": None, "assigned_share_expiring_90_days": None, **values})


def test_expiry_months_beyond_the_drawn_window_are_named_in_a_caption(tenant: Tenant) -> None:
    as_of = tenant.today
    far = dt.date(as_of.year + CALENDAR_AFTER // 12 + 2, 1, 1)
    row = (3, 0, 3, 0, 1, 2, decimal.Decimal("30.00"), decimal.Decimal(0), decimal.Decimal("30.00"))
    calendar = {as_of.replace(day=1): row, far: (7, 0, 7, 0, 0, 7, *(decimal.Decimal("70.50"),) * 2, 0)}
    data = ReportData(figures_for(as_of), [], [], {}, calendar, [], "certiverse", "duckdb")
    svg, caption = expiry_chart(data)
    assert f'data-month="{month(far)}"' not in svg and f'data-month="{month(as_of)}"' in svg
    assert f"{far:%b %Y}" in caption and "expiry_by_month" in caption
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


def test_report_as_of_another_date_than_the_marts_asks_for_a_transform(
    warehouse: dict[str, Any], tenant: Tenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    later = tenant.today + dt.timedelta(days=45)
    output = tmp_path / "later.html"
    assert main(["report", "--duckdb-file", warehouse["duckdb"], "--pipelines-dir", warehouse["pipelines"],
                 "--output", str(output), "--as-of", later.isoformat()]) == EXIT_DESTINATION
    assert f"certiverse transform --as-of {later}" in capsys.readouterr().err and not output.exists()
    with pytest.raises(ReportError, match=f"built for {tenant.today}"):
        read_report_data(warehouse["pipeline"], later)
    assert read_report_data(warehouse["pipeline"], tenant.today).as_of == tenant.today


def test_report_without_marts_asks_for_a_transform(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "report.html"
    code = main(["report", "--duckdb-file", str(tmp_path / "empty.duckdb"), "--pipelines-dir", str(tmp_path / "p"),
                 "--output", str(output)])
    assert code == EXIT_DESTINATION  # the exit-code table's row for ReportError
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
    assert on_postgres.figures == on_duckdb.figures  # numbers of the same types, decimals to the cent
    for part in ("programs", "partners", "redemptions", "calendar", "idle"):
        assert normalised(getattr(on_postgres, part)) == normalised(getattr(on_duckdb, part)), part
    assert render_report(on_postgres).count("<svg") == 4
    frame = mart("expiry_calendar", destination="postgres", credentials=dsn)
    assert len(frame) == query(pipeline, "select count(*) from {expiry_calendar}")[0][0] > 0
    # money is a decimal in pandas from Postgres too, as from DuckDB and the Parquet files
    on_duckdb_frame = mart("expiry_calendar", warehouse["duckdb"])
    for column in ("value_expiring", "value_expired"):
        assert {type(v) for v in frame[column]} == {decimal.Decimal} == {type(v) for v in on_duckdb_frame[column]}
        assert sorted(frame[column]) == sorted(on_duckdb_frame[column])


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


# -- every figure from a mart ------------------------------------------------------------------

REPORTING = Path(__file__).resolve().parent.parent / "pipelines" / "reporting"
AGGREGATION = re.compile(r"\b(group\s+by|having|filter\s*\(|(count|sum|avg|min|max|median|percentile_cont)\s*\()",
                         re.IGNORECASE)


def sql_strings(path: Path) -> list[str]:
    """The text of every string literal in a module; an f-string's literal parts joined, ``{}`` between."""
    tree = ast.parse(path.read_text())
    parts = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    texts = ["{}".join(part.value if isinstance(part, ast.Constant) else "" for part in node.values)
             for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)]
    return texts + [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                    and isinstance(node.value, str) and id(node) not in parts]


@pytest.mark.parametrize("path", sorted(REPORTING.glob("*.py")), ids=lambda p: p.name)
def test_reporting_only_selects_rows_it_never_aggregates(path: Path) -> None:
    found = [text.strip()[:80] for text in sql_strings(path) if "select" in text.lower() and AGGREGATION.search(text)]
    assert not found, f"SQL that aggregates in {path.name}: {found}; select from a mart instead"


def test_the_report_reads_only_the_marts_its_dbt_exposure_declares() -> None:
    exposures = {e["name"]: e for e in yaml.safe_load(
        (TRANSFORMS_DIR / "models" / "marts" / "exposures.yml").read_text())["exposures"]}
    declared = {re.fullmatch(r"ref\('(\w+)'\)", ref).group(1) for ref in exposures["certiverse_report"]["depends_on"]}
    read = set(re.findall(r"\"(\w+)\"", (REPORTING / "report.py").read_text())) & declared
    assert declared == set(MARTS) == read
    marts = {p.stem for p in (TRANSFORMS_DIR / "models" / "marts").glob("*.sql")}
    published = {re.fullmatch(r"ref\('(\w+)'\)", ref).group(1) for ref in exposures["published_copy"]["depends_on"]}
    assert published == marts


def test_the_page_shows_the_marts_figures(warehouse: dict[str, Any], page: str) -> None:
    figures = headlines(warehouse["pipeline"])
    with warehouse["pipeline"].sql_client() as client, client.execute_query(
        f"select * from {client.make_qualified_table_name('headline_figures')}"
    ) as cursor:
        row = dict(zip([d[0] for d in cursor.description], cursor.fetchall()[0]))
    assert dataclasses.asdict(figures) == row
    text = html.unescape(page)
    for shown in (f"{row['vouchers_issued']:,} vouchers", f"{row['amount_paid']:,.2f} paid",
                  f"breakage) {row['value_expired_unused']:,.2f}", f"{row['vouchers_expiring_90_days']:,} worth "
                  f"{row['value_expiring_90_days']:,.2f} within 90 days"):
        assert shown in text
