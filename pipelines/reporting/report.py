"""`certiverse report`: one self-contained HTML page of charts, read from the marts.

The page needs no network to be viewed: charts are inline SVG drawn by
``pipelines.reporting.charts``, styles are inline, and no font, script or image is fetched.
All numbers come from the marts (docs/marts.md) through the run context's SQL client,
in SQL that runs on DuckDB and Postgres alike.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from ..context import RunContext
from .charts import Column, Segment, StackedRow, month_columns, stacked_bars
from .headlines import date_literal, headlines

log = logging.getLogger(__name__)

MARTS = ("voucher_status", "voucher_utilization", "voucher_expiry", "partner_utilization",
         "program_utilization", "expiry_calendar")
IDLE_DAYS = 90  # a purchase none of whose vouchers was used in this many days is idle
TOP_IDLE = 10
MAX_BARS = 25  # partners/programs drawn, largest by vouchers issued
REDEMPTION_MONTHS = 60  # months of redemptions drawn, up to the as-of month
CALENDAR_BEFORE, CALENDAR_AFTER = 48, 36  # months of the expiry calendar drawn around the as-of month

USED, REDEEMABLE, EXPIRED, DEACTIVATED = "#2e7d5b", "#4a7fc1", "#d9822b", "#a3a9b3"
BREAKAGE, AT_RISK = "#c0504d", "#e0a93b"
STATUS_LEGEND = (("used", USED), ("redeemable", REDEEMABLE), ("expired unused", EXPIRED),
                 ("deactivated", DEACTIVATED))


class ReportError(RuntimeError):
    """The marts the report reads are missing."""


@dataclass
class ReportData:
    """Everything the page shows, as plain rows read from the marts."""

    as_of: dt.date
    built_for: dt.date
    headlines: list[str]
    programs: list[tuple[Any, ...]]
    partners: list[tuple[Any, ...]]
    redemptions: dict[dt.date, tuple[int, float]]  # month -> (vouchers used, value used)
    calendar: dict[dt.date, tuple[Any, ...]]  # month -> (expiring, expired, assigned, reserved, value, value expired)
    idle: list[tuple[Any, ...]]
    dataset: str
    destination: str


def read_report_data(context: RunContext, as_of: dt.date | None = None) -> ReportData:
    """Read the report's numbers from the marts; ``as_of`` defaults to the date the marts were built for."""
    path = context.warehouse.duckdb_file
    if path and not os.path.exists(path):
        raise ReportError(f"no DuckDB file at {path}: load it and build the marts with `certiverse run` "
                          "(or `certiverse load`, then `certiverse transform`)")
    with context.sql_client() as client:
        _check_marts(client)
        q = client.make_qualified_table_name
        built_for = _as_date(client.execute_sql(f"select max(as_of_date) from {q('voucher_status')}")[0][0])
        as_of = as_of or built_for or dt.datetime.now(dt.UTC).date()
        return ReportData(
            as_of=as_of,
            built_for=built_for,
            headlines=headlines(client, as_of).sentences(),
            programs=_utilization(client, "program_utilization", "program_name"),
            partners=_utilization(client, "partner_utilization", "partner_name"),
            redemptions=_redemptions(client),
            calendar=_calendar(client),
            idle=_idle(client, as_of),
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


def _utilization(client: Any, mart: str, name: str) -> list[tuple[Any, ...]]:
    """(name, issued, used, redeemable, expired unused, deactivated, rate, value redeemable, breakage) per name."""
    return client.execute_sql(
        f"""
        select
            {name},
            vouchers_issued,
            vouchers_used,
            vouchers_assigned_unused + vouchers_reserved + vouchers_unassigned,
            vouchers_expired_unused,
            vouchers_deactivated,
            utilization_rate,
            value_redeemable,
            value_expired_unused
        from {client.make_qualified_table_name(mart)}
        where vouchers_issued > 0
        order by vouchers_issued desc, {name}
        """
    )


def _redemptions(client: Any) -> dict[dt.date, tuple[int, float]]:
    rows = client.execute_sql(
        f"""
        select
            cast(extract(year from used_on) as integer),
            cast(extract(month from used_on) as integer),
            count(*),
            sum(voucher_value)
        from {client.make_qualified_table_name('voucher_status')}
        where voucher_status = 'used' and used_on is not null
        group by 1, 2
        """
    )
    return {dt.date(int(y), int(m), 1): (int(n), round(float(v or 0), 2)) for y, m, n, v in rows}


def _calendar(client: Any) -> dict[dt.date, tuple[Any, ...]]:
    rows = client.execute_sql(
        f"""
        select
            expiry_month,
            sum(vouchers_expiring),
            sum(vouchers_expired),
            sum(vouchers_assigned),
            sum(vouchers_reserved),
            sum(value_expiring),
            sum(value_expired)
        from {client.make_qualified_table_name('expiry_calendar')}
        group by expiry_month
        """
    )
    return {_as_date(m): (*(int(n) for n in counts), float(v), float(e)) for m, *counts, v, e in rows}


def _idle(client: Any, as_of: dt.date) -> list[tuple[Any, ...]]:
    """Purchases with redeemable vouchers and no use since ``as_of`` - IDLE_DAYS, most redeemable value first."""
    q = client.make_qualified_table_name
    cutoff = date_literal(as_of - dt.timedelta(days=IDLE_DAYS))
    return client.execute_sql(
        f"""
        with last_use as (
            select purchase_id, max(used_on) as last_used_on
            from {q('voucher_status')}
            group by purchase_id
        ),
        next_expiry as (
            select purchase_code, min(expires_on) as next_expires_on
            from {q('voucher_expiry')}
            where not is_expired
            group by purchase_code
        )
        select
            u.purchase_code,
            u.partner_name,
            u.program_name,
            u.purchased_on,
            u.vouchers_issued,
            u.vouchers_assigned_unused + u.vouchers_reserved + u.vouchers_unassigned as vouchers_redeemable,
            u.value_redeemable,
            l.last_used_on,
            n.next_expires_on
        from {q('voucher_utilization')} as u
        left join last_use as l on l.purchase_id = u.purchase_id
        left join next_expiry as n on n.purchase_code = u.purchase_code
        where u.vouchers_assigned_unused + u.vouchers_reserved + u.vouchers_unassigned > 0
            and (l.last_used_on is null or l.last_used_on < {cutoff})
        order by u.value_redeemable desc, vouchers_redeemable desc, u.purchase_code
        limit {TOP_IDLE}
        """
    )


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
        count, value = data.redemptions.get(month, (0, 0.0))
        columns.append(Column(
            month, (Segment("used", "vouchers used", count, USED),),
            {"data-month": month.strftime("%Y-%m"), "data-value": str(count), "data-value-used": f"{value:.2f}"},
            f"{month:%b %Y}: {count:,} vouchers used, value {value:,.2f}",
        ))
    earlier = [v for m, v in data.redemptions.items() if m < months[0]]
    caption = (f"Before {months[0]:%b %Y} (not drawn): {sum(n for n, _ in earlier):,} vouchers used."
               if earlier else "")
    svg = month_columns("redemptions", "Vouchers used per month", columns, (("vouchers used", USED),),
                        marker=(data.as_of, f"as of {data.as_of}"))
    return svg, caption


def expiry_chart(data: ReportData) -> tuple[str, str]:
    """Value expiring per month: what already expired (breakage) and what is still at risk."""
    if not data.calendar:
        return "<p>No unused voucher is left to expire.</p>", ""
    first = max(min(data.calendar), _month(data.as_of, -CALENDAR_BEFORE))
    last = min(max(data.calendar), _month(data.as_of, CALENDAR_AFTER))
    months = _months(first, max(first, last))
    columns = []
    for month in months:
        n, expired_n, assigned, _, value, expired = data.calendar.get(month, (0, 0, 0, 0, 0.0, 0.0))
        columns.append(Column(
            month,
            (Segment("expired", "expired unused", expired, BREAKAGE),
             Segment("at_risk", "at risk", round(value - expired, 2), AT_RISK)),
            {"data-month": month.strftime("%Y-%m"), "data-value": f"{value:.2f}",
             "data-value-expired": f"{expired:.2f}", "data-vouchers": str(n)},
            f"{month:%b %Y}: {n:,} vouchers expiring ({expired_n:,} already expired, {assigned:,} assigned), "
            f"value {value:,.2f} of which {value - expired:,.2f} still at risk",
        ))
    outside = [(m, row) for m, row in data.calendar.items() if not months[0] <= m <= months[-1]]
    caption = ""
    if outside:
        caption = (f"Outside the drawn months: {sum(r[0] for _, r in outside):,} vouchers worth "
                   f"{sum(r[4] for _, r in outside):,.2f}.")
    svg = month_columns("expiry-calendar", "Value of unused vouchers by expiry month", columns,
                        (("expired unused (breakage)", BREAKAGE), ("still at risk", AT_RISK)),
                        marker=(data.as_of, f"as of {data.as_of}"), money=True)
    return svg, caption


def upcoming_table(data: ReportData, months: int = 12) -> str:
    """The next ``months`` expiry months from the as-of month, as a table."""
    start = _month(data.as_of)
    rows = [(m, data.calendar[m]) for m in _months(start, _month(start, months - 1)) if m in data.calendar]
    if not rows:
        return f"<p>Nothing expires in the {months} months from {start:%b %Y}.</p>"
    body = "".join(
        f'<tr data-month="{m:%Y-%m}"><td>{m:%b %Y}</td><td class="num">{n:,}</td><td class="num">{gone:,}</td>'
        f'<td class="num">{assigned:,}</td><td class="num">{reserved:,}</td>'
        f'<td class="num">{value - expired:,.2f}</td></tr>'
        for m, (n, gone, assigned, reserved, value, expired) in rows
    )
    return ('<table data-chart="expiry-upcoming" id="chart-expiry-upcoming"><thead><tr><th>Expiry month</th>'
            '<th class="num">Vouchers expiring</th><th class="num">already expired</th>'
            '<th class="num">assigned</th><th class="num">reserved</th><th class="num">Value at risk</th></tr></thead>'
            f"<tbody>{body}</tbody></table>")


def idle_table(data: ReportData) -> str:
    """The top idle purchases, with a bar of each one's redeemable value."""
    if not data.idle:
        return f"<p>No purchase with redeemable vouchers has been idle for {IDLE_DAYS} days.</p>"
    top = max(float(r[6] or 0) for r in data.idle) or 1.0
    rows = []
    for code, partner, program, bought, issued, redeemable, value, last_used, next_expiry in data.idle:
        last_used, bought, next_expiry = _as_date(last_used), _as_date(bought), _as_date(next_expiry)
        since = last_used or bought
        idle_days = (data.as_of - since).days if since else None
        rows.append(
            f'<tr data-purchase-code="{escape(code)}" data-value="{float(value or 0):.2f}" '
            f'data-vouchers="{int(redeemable)}"><td>{escape(code)}</td><td class="wrap">{escape(partner or "")}</td>'
            f"<td class=\"wrap\">{escape(program or '')}</td><td>{bought or ''}</td>"
            f'<td class="num">{int(redeemable):,} of {int(issued):,}</td>'
            f'<td class="num"><span class="cellbar" style="width:{60 * float(value or 0) / top:.0f}px"></span>'
            f"{float(value or 0):,.2f}</td><td>{last_used or 'never'}</td>"
            f'<td class="num">{idle_days if idle_days is not None else ""}</td><td>{next_expiry or ""}</td></tr>'
        )
    return ('<div class="scroll"><table data-chart="idle-purchases" id="chart-idle-purchases"><thead><tr>'
            '<th>Purchase</th><th>Partner</th><th>Program</th><th>Bought</th><th class="num">Redeemable vouchers</th>'
            '<th class="num">Redeemable value</th><th>Last used</th><th class="num">Days idle</th>'
            "<th>Next expiry</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def render_report(data: ReportData, generated_at: dt.datetime | None = None) -> str:
    """The whole HTML page."""
    generated_at = generated_at or dt.datetime.now(dt.UTC).replace(microsecond=0)
    redemptions, redemptions_note = redemptions_chart(data)
    expiry, expiry_note = expiry_chart(data)
    built = "" if data.as_of == data.built_for else f" (marts built for {data.built_for})"
    sections = [
        ("programs", "Utilization by program", "Vouchers issued per program, by status; sorted by the share used.",
         utilization_chart("program-utilization", "Voucher status by program", data.programs), ""),
        ("partners", "Utilization by partner",
         f"The same per buying partner (the {MAX_BARS} largest by vouchers issued).",
         utilization_chart("partner-utilization", "Voucher status by partner", data.partners), ""),
        ("redemptions", "Redemptions over time",
         "Vouchers used per month, by the date they were used (UTC). The as-of month is partial.",
         redemptions, redemptions_note),
        ("expiry", "Expiry calendar",
         ("Value of unused, not deactivated vouchers by the month they expire: in past months what expired "
          "unused (breakage), from the as-of date on what is still at risk."),
         expiry + upcoming_table(data), expiry_note),
        ("idle", "Top idle purchases",
         (f"Purchases with redeemable vouchers (unused, unexpired, not deactivated) and no voucher used in the "
          f"{IDLE_DAYS} days before {data.as_of}, most redeemable value first."),
         idle_table(data), ""),
    ]
    body = "\n".join(
        f'<section id="{anchor}"><h2>{escape(title)}</h2><p class="lede">{escape(lede)}</p>{content}'
        f'{f"<p class=caption>{escape(note)}</p>" if note else ""}</section>'
        for anchor, title, lede, content, note in sections
    )
    headline = "".join(f"<li>{escape(line)}</li>" for line in data.headlines)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Certiverse vouchers as of {data.as_of}</title>
<style>{_CSS}</style></head>
<body><main>
<header><h1>Certiverse vouchers</h1>
<p class="meta">As of {data.as_of}{built} · dataset <code>{escape(data.dataset)}</code> on {escape(data.destination)}
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


__all__ = ["IDLE_DAYS", "MARTS", "ReportData", "ReportError", "read_report_data", "render_report", "write_report"]
