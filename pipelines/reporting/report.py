"""`certiverse report`: one self-contained HTML page of charts, read from the marts.

The page needs no network to be viewed: charts are inline SVG drawn by
``pipelines.reporting.charts``, styles are inline, and no font, script or image is fetched.
Every number comes from a mart (docs/marts.md) through the run context's SQL client: the SQL here
selects rows (``where``, ``order by``), it never sums or groups; what the page shows is what
dbt built and tested, and what a BI tool reading the same marts sees. The marts are declared
as this page's dbt exposure (``transforms/models/marts/exposures.yml``).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

from ..context import RunContext
from .charts import Column, Segment, StackedRow, month_columns, stacked_bars
from .headlines import Headlines, headlines

log = logging.getLogger(__name__)

# the marts the page reads (its exposure in transforms/models/marts/exposures.yml lists the same)
MARTS = ("headline_figures", "program_utilization", "partner_utilization", "redemptions_by_month",
         "expiry_by_month", "idle_purchases")
TOP_IDLE = 10
MAX_BARS = 25  # partners/programs drawn, largest by vouchers issued
REDEMPTION_MONTHS = 60  # months of redemptions drawn, up to the as-of month
CALENDAR_BEFORE, CALENDAR_AFTER = 48, 36  # months of the expiry calendar drawn around the as-of month
UPCOMING_MONTHS = 12

USED, REDEEMABLE, EXPIRED, DEACTIVATED = "#2e7d5b", "#4a7fc1", "#d9822b", "#a3a9b3"
BREAKAGE, AT_RISK = "#c0504d", "#e0a93b"
STATUS_LEGEND = (("used", USED), ("redeemable", REDEEMABLE), ("expired unused", EXPIRED),
                 ("deactivated", DEACTIVATED))

# columns read, in this order, from each mart
UTILIZATION = ("vouchers_issued", "vouchers_used", "vouchers_redeemable", "vouchers_expired_unused",
               "vouchers_deactivated", "utilization_rate", "value_redeemable", "value_expired_unused")
CALENDAR = ("vouchers_expiring", "vouchers_expired_unused", "vouchers_redeemable", "vouchers_reserved",
            "vouchers_assigned_unused", "vouchers_unassigned", "value_expiring", "value_expired_unused",
            "value_redeemable")
IDLE = ("purchase_code", "partner_name", "program_name", "purchased_on", "vouchers_issued", "vouchers_redeemable",
        "value_redeemable", "last_used_on", "days_idle", "next_expiry_on")


class ReportError(RuntimeError):
    """The marts the report reads are missing, or were built for another as-of date."""


@dataclass
class ReportData:
    """Everything the page shows, as rows read from the marts."""

    figures: Headlines
    programs: list[tuple[Any, ...]]  # (program_name, *UTILIZATION)
    partners: list[tuple[Any, ...]]  # (partner_name, *UTILIZATION)
    redemptions: dict[dt.date, tuple[int, Decimal]]  # month -> (vouchers used, value used)
    calendar: dict[dt.date, tuple[Any, ...]]  # month -> CALENDAR
    idle: list[tuple[Any, ...]]  # IDLE, the TOP_IDLE first by idle_rank
    dataset: str
    destination: str

    @property
    def as_of(self) -> dt.date:
        """The as-of date the marts were built for."""
        return self.figures.as_of_date


def read_report_data(context: RunContext, as_of: dt.date | None = None) -> ReportData:
    """Read the report's rows from the marts. ``as_of``, when given, must be the date the marts
    were built for: the page shows what they hold, and they hold one as-of date."""
    path = context.warehouse.duckdb_file
    if path and not os.path.exists(path):
        raise ReportError(f"no DuckDB file at {path}: load it and build the marts with `certiverse run` "
                          "(or `certiverse load`, then `certiverse transform`)")
    with context.sql_client() as client:
        _check_marts(client)
        figures = headlines(client)
        if as_of is not None and as_of != figures.as_of_date:
            raise ReportError(f"the marts were built for {figures.as_of_date}, not {as_of}: build them for that date "
                              f"with `certiverse transform --as-of {as_of}`, then write the report")
        return ReportData(
            figures=figures,
            programs=_select(client, "program_utilization", ("program_name", *UTILIZATION),
                             "where vouchers_issued > 0 order by vouchers_issued desc, program_name"),
            partners=_select(client, "partner_utilization", ("partner_name", *UTILIZATION),
                             "where vouchers_issued > 0 order by vouchers_issued desc, partner_name"),
            redemptions={_as_date(m): (int(n), v) for m, n, v in _select(
                client, "redemptions_by_month", ("used_month", "vouchers_used", "value_used"))},
            calendar={_as_date(row[0]): tuple(row[1:]) for row in _select(
                client, "expiry_by_month", ("expiry_month", *CALENDAR))},
            idle=_select(client, "idle_purchases", IDLE, f"where idle_rank <= {TOP_IDLE} order by idle_rank"),
            dataset=client.dataset_name,
            destination=context.warehouse.destination,
        )


def _check_marts(client: Any) -> None:
    rows = client.execute_sql(
        "select table_name from information_schema.tables where table_schema = %s", client.dataset_name
    )
    missing = sorted(set(MARTS) - {row[0] for row in rows or ()})
    if missing:
        raise ReportError(f"marts {missing} are missing from dataset {client.dataset_name}: "
                          "run `certiverse transform` (or `certiverse run`) first")


def _select(client: Any, mart: str, columns: Sequence[str], clauses: str = "") -> list[tuple[Any, ...]]:
    """Rows of one mart: the ``columns``, filtered and ordered by ``clauses`` (never grouped)."""
    sql = f"select {', '.join(columns)} from {client.make_qualified_table_name(mart)} {clauses}"
    return [tuple(row) for row in client.execute_sql(sql) or ()]


def _as_date(value: Any) -> Any:
    return value.date() if isinstance(value, dt.datetime) else value


def _month(day: dt.date, shift: int = 0) -> dt.date:
    index = day.year * 12 + day.month - 1 + shift
    return dt.date(index // 12, index % 12 + 1, 1)


def _months(first: dt.date, last: dt.date) -> list[dt.date]:
    months, month = [], _month(first)
    while month <= last:
        months.append(month)
        month = _month(month, 1)
    return months


# -- the page ---------------------------------------------------------------------------------


def utilization_chart(chart_id: str, title: str, rows: Sequence[tuple[Any, ...]]) -> str:
    """Stacked bars of voucher status per program or partner, highest utilization first."""
    bars = []
    for name, issued, used, redeemable, expired, deactivated, rate, _, _ in sorted(
        rows[:MAX_BARS], key=lambda r: (-float(r[6] or 0), r[0])
    ):
        parts = (("used", "used", used, USED), ("redeemable", "redeemable", redeemable, REDEEMABLE),
                 ("expired_unused", "expired unused", expired, EXPIRED),
                 ("deactivated", "deactivated", deactivated, DEACTIVATED))
        bars.append(StackedRow(
            label=name,
            segments=tuple(Segment(s, label, int(n), colour) for s, label, n, colour in parts),
            attrs={"data-label": name, "data-value": f"{float(rate or 0):.4f}", "data-issued": str(int(issued))},
            note=f"{100 * float(rate or 0):.1f}% used · {int(used):,} of {int(issued):,}",
        ))
    return stacked_bars(chart_id, title, bars, STATUS_LEGEND)


def redemptions_chart(data: ReportData) -> tuple[str, str]:
    """Vouchers used per month, and a caption for the months left out."""
    if not data.redemptions:
        return "<p>No voucher has been used yet.</p>", ""
    last = max(_month(data.as_of), max(data.redemptions))
    months = _months(max(min(data.redemptions), _month(last, 1 - REDEMPTION_MONTHS)), last)
    columns = []
    for month in months:
        count, value = data.redemptions.get(month, (0, Decimal(0)))  # the mart has every month up to the as-of one
        columns.append(Column(
            month, (Segment("used", "vouchers used", count, USED),),
            {"data-month": month.strftime("%Y-%m"), "data-value": str(count), "data-value-used": f"{value:.2f}"},
            f"{month:%b %Y}: {count:,} vouchers used, value {value:,.2f}",
        ))
    caption = (f"Months before {months[0]:%b %Y} are not drawn; every month is in the mart redemptions_by_month."
               if min(data.redemptions) < months[0] else "")
    svg = month_columns("redemptions", "Vouchers used per month", columns, (("vouchers used", USED),),
                        marker=(data.as_of, f"as of {data.as_of}"))
    return svg, caption


def _calendar_row(data: ReportData, month: dt.date) -> dict[str, Any]:
    """One month of ``expiry_by_month`` by column name. The mart has every month from the first
    to the last expiry month; before and after those nothing expires: zeros."""
    row = data.calendar.get(month) or (0,) * 6 + (Decimal(0),) * 3
    return dict(zip(CALENDAR, row))


def expiry_chart(data: ReportData) -> tuple[str, str]:
    """Value expiring per month: what already expired (breakage) and what is still at risk."""
    if not data.calendar:
        return "<p>No unused voucher is left to expire.</p>", ""
    first = max(min(data.calendar), _month(data.as_of, -CALENDAR_BEFORE))
    last = min(max(data.calendar), _month(data.as_of, CALENDAR_AFTER))
    months = _months(first, max(first, last))
    columns = []
    for month in months:
        row = _calendar_row(data, month)
        value, expired, at_risk = row["value_expiring"], row["value_expired_unused"], row["value_redeemable"]
        columns.append(Column(
            month,
            (Segment("expired", "expired unused", float(expired), BREAKAGE),
             Segment("at_risk", "at risk", float(at_risk), AT_RISK)),
            {"data-month": month.strftime("%Y-%m"), "data-value": f"{value:.2f}",
             "data-value-expired": f"{expired:.2f}", "data-value-at-risk": f"{at_risk:.2f}",
             "data-vouchers": str(row["vouchers_expiring"])},
            f"{month:%b %Y}: {row['vouchers_expiring']:,} vouchers expiring ({row['vouchers_expired_unused']:,} "
            f"expired unused, {row['vouchers_redeemable']:,} still redeemable), value {value:,.2f} of which "
            f"{at_risk:,.2f} still at risk",
        ))
    outside = sorted(m for m in data.calendar if not months[0] <= m <= months[-1])
    caption = ""
    if outside:
        caption = (f"Not drawn: expiry months from {outside[0]:%b %Y} to {outside[-1]:%b %Y} outside the drawn "
                   "ones; every month is in the mart expiry_by_month.")
    svg = month_columns("expiry-calendar", "Value of unused vouchers by expiry month", columns,
                        (("expired unused (breakage)", BREAKAGE), ("still at risk", AT_RISK)),
                        marker=(data.as_of, f"as of {data.as_of}"), money=True)
    return svg, caption


def upcoming_table(data: ReportData, months: int = UPCOMING_MONTHS) -> str:
    """The ``months`` expiry months from the as-of month, every one of them: the redeemable vouchers
    expiring in each, by status, and their value (what expired earlier in the as-of month is
    breakage, in the chart above)."""
    start = _month(data.as_of)
    body = "".join(
        f'<tr data-month="{m:%Y-%m}" data-vouchers="{row["vouchers_redeemable"]}" '
        f'data-value="{row["value_redeemable"]:.2f}"><td>{m:%b %Y}</td>'
        f'<td class="num">{row["vouchers_redeemable"]:,}</td>'
        f'<td class="num">{row["vouchers_reserved"]:,}</td><td class="num">{row["vouchers_assigned_unused"]:,}</td>'
        f'<td class="num">{row["vouchers_unassigned"]:,}</td><td class="num">{row["value_redeemable"]:,.2f}</td></tr>'
        for m, row in ((m, _calendar_row(data, m)) for m in _months(start, _month(start, months - 1)))
    )
    return ('<table data-chart="expiry-upcoming" id="chart-expiry-upcoming"><thead><tr><th>Expiry month</th>'
            '<th class="num">Redeemable vouchers expiring</th><th class="num">reserved</th>'
            '<th class="num">assigned, unused</th><th class="num">unassigned</th><th class="num">Value at risk</th>'
            f"</tr></thead><tbody>{body}</tbody></table>")


def idle_table(data: ReportData) -> str:
    """The top idle purchases, with a bar of each one's redeemable value."""
    idle_days = data.figures.idle_after_days
    if not data.idle:
        return f"<p>No purchase with redeemable vouchers has been idle for {idle_days} days.</p>"
    top = max(float(r[6] or 0) for r in data.idle) or 1.0
    rows = []
    for code, partner, program, bought, issued, redeemable, value, last_used, days, next_expiry in data.idle:
        last_used, bought, next_expiry = _as_date(last_used), _as_date(bought), _as_date(next_expiry)
        rows.append(
            f'<tr data-purchase-code="{escape(code)}" data-value="{value:.2f}" data-vouchers="{int(redeemable)}" '
            f'data-days-idle="{days}"><td>{escape(code)}</td><td class="wrap">{escape(partner or "")}</td>'
            f"<td class=\"wrap\">{escape(program or '')}</td><td>{bought or ''}</td>"
            f'<td class="num">{int(redeemable):,} of {int(issued):,}</td>'
            f'<td class="num"><span class="cellbar" style="width:{60 * float(value) / top:.0f}px"></span>'
            f"{value:,.2f}</td><td>{last_used or 'never'}</td>"
            f'<td class="num">{days:,}</td><td>{next_expiry or ""}</td></tr>'
        )
    shown = ""
    if data.figures.purchases_idle > len(data.idle):
        shown = (f"The {len(data.idle)} of {data.figures.purchases_idle:,} idle purchases that hold the most; all "
                 f"idle purchases hold {data.figures.value_idle:,.2f} of redeemable value (mart idle_purchases).")
    return ('<div class="scroll"><table data-chart="idle-purchases" id="chart-idle-purchases"><thead><tr>'
            '<th>Purchase</th><th>Partner</th><th>Program</th><th>Bought</th><th class="num">Redeemable vouchers</th>'
            '<th class="num">Redeemable value</th><th>Last used</th><th class="num">Days idle</th>'
            "<th>Next expiry</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
            + (f'<p class="caption">{escape(shown)}</p>' if shown else ""))


def render_report(data: ReportData, generated_at: dt.datetime | None = None) -> str:
    """The whole HTML page."""
    generated_at = generated_at or dt.datetime.now(dt.UTC).replace(microsecond=0)
    redemptions, redemptions_note = redemptions_chart(data)
    expiry, expiry_note = expiry_chart(data)
    zone = data.figures.reporting_timezone
    sections = [
        ("programs", "Utilization by program", "Vouchers issued per program, by status; sorted by the share used.",
         utilization_chart("program-utilization", "Voucher status by program", data.programs), ""),
        ("partners", "Utilization by partner",
         f"The same per buying partner (the {MAX_BARS} largest by vouchers issued).",
         utilization_chart("partner-utilization", "Voucher status by partner", data.partners), ""),
        ("redemptions", "Redemptions over time",
         f"Vouchers used per month, by the date they were used ({zone}). The as-of month is partial.",
         redemptions, redemptions_note),
        ("expiry", "Expiry calendar",
         ("Value of unused, not deactivated vouchers by the month they expire: in past months what expired "
          f"unused (breakage), from the as-of date on what is still at risk. Below, the {UPCOMING_MONTHS} months "
          "from the as-of month, each one listed, with the redeemable vouchers expiring in it."),
         expiry + upcoming_table(data), expiry_note),
        ("idle", "Top idle purchases",
         (f"Purchases with redeemable vouchers (unused, unexpired, not deactivated) of which no voucher was used, "
          f"and which were not bought, in the {data.figures.idle_after_days} days up to {data.as_of}; most "
          "redeemable value first."),
         idle_table(data), ""),
    ]
    body = "\n".join(
        f'<section id="{anchor}"><h2>{escape(title)}</h2><p class="lede">{escape(lede)}</p>{content}'
        f'{f"<p class=caption>{escape(note)}</p>" if note else ""}</section>'
        for anchor, title, lede, content, note in sections
    )
    headline = "".join(f"<li>{escape(line)}</li>" for line in data.figures.sentences())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Certiverse vouchers as of {data.as_of}</title>
<style>{_CSS}</style></head>
<body><main>
<header><h1>Certiverse vouchers</h1>
<p class="meta">As of {data.as_of} · dates in {escape(zone)}
 · dataset <code>{escape(data.dataset)}</code> on {escape(data.destination)}
 · generated {generated_at.isoformat()} · values in the tenant's currency</p></header>
<ul class="headlines" id="headlines">{headline}</ul>
{body}
<footer>Built by <code>certiverse report</code> from the marts described in docs/marts.md.</footer>
</main></body></html>
"""


_CSS = """
body{margin:0;background:#f6f7f9;color:#2b2f36;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,
Helvetica,Arial,sans-serif}
main{max-width:1080px;margin:0 auto;padding:24px 20px 40px}
h1{margin:0 0 4px;font-size:26px}h2{margin:0 0 4px;font-size:18px}
.meta,.lede,.caption,footer{color:#6b7280}.lede{margin:0 0 10px}.caption{font-size:12px}
.headlines{list-style:none;margin:16px 0;padding:14px 18px;background:#fff;border-left:4px solid #2e7d5b;
border-radius:6px;box-shadow:0 1px 2px rgba(0,0,0,.06);font-size:15px}
.headlines li{margin:4px 0}
section{background:#fff;border-radius:6px;padding:16px 20px;margin:16px 0;box-shadow:0 1px 2px rgba(0,0,0,.06)}
table{border-collapse:collapse;width:100%;margin-top:10px;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e3e6ea}
th{color:#6b7280;font-weight:600;vertical-align:bottom}
td{white-space:nowrap}td.wrap{white-space:normal}
.scroll{overflow-x:auto}
th.num,td.num{text-align:right}
.cellbar{display:inline-block;height:10px;margin-right:8px;background:#4a7fc1;border-radius:2px;
vertical-align:middle}
@media print{body{background:#fff}section{box-shadow:none;break-inside:avoid}}
"""


def write_report(context: RunContext, output: str | os.PathLike[str], as_of: dt.date | None = None) -> Path:
    """Read the marts and write the HTML page to ``output`` (replaced at once, never half written)."""
    page = render_report(read_report_data(context, as_of))
    path = Path(output).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(page, encoding="utf-8")
    os.replace(partial, path)
    log.info("wrote report %s (%d bytes)", path, len(page))
    return path


__all__ = ["MARTS", "TOP_IDLE", "ReportData", "ReportError", "read_report_data", "render_report", "write_report"]
