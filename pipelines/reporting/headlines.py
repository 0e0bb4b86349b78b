"""The headline sentences a run prints, read from the marts (DuckDB and Postgres alike)."""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext
from typing import Any, ContextManager

import dlt

from ..transform import today_utc


def date_literal(day: dt.date) -> str:
    """A date literal DuckDB and Postgres both read."""
    return f"cast('{day.isoformat()}' as date)"


def _open(pipeline_or_client: Any) -> ContextManager[Any]:
    """A pipeline's SQL client to open, or an already open client to use as it is."""
    if isinstance(pipeline_or_client, dlt.Pipeline):
        return pipeline_or_client.sql_client()
    return nullcontext(pipeline_or_client)


def headlines(pipeline_or_client: Any, as_of: dt.date | None = None) -> list[str]:
    """Two or three readable lines from the marts: utilization, money, what expires soon.

    ``pipeline_or_client`` is a dlt pipeline or an open dlt SQL client. Windows
    ("within 30 days") count from ``as_of``, default the date the marts were built for.
    """
    with _open(pipeline_or_client) as client:
        q = client.make_qualified_table_name
        totals = client.execute_sql(
            f"""
            select
                max(as_of_date),
                count(*),
                count(*) filter (where voucher_status = 'used'),
                count(*) filter (where voucher_status in ('assigned_unused', 'reserved', 'unassigned')),
                count(*) filter (where voucher_status = 'expired_unused'),
                count(*) filter (where voucher_status = 'deactivated')
            from {q('voucher_status')}
            """
        )[0]
        money = client.execute_sql(
            f"""
            select
                count(*),
                sum(amount_paid),
                sum(value_used),
                sum(value_redeemable),
                sum(value_expired_unused)
            from {q('voucher_utilization')}
            """
        )[0]
        built_for, vouchers, used, redeemable, expired, deactivated = totals
        start = as_of or built_for or today_utc()
        soon = client.execute_sql(
            f"""
            select
                count(*) filter (where expires_on <= {date_literal(start + dt.timedelta(days=30))}),
                sum(value_at_risk) filter (where expires_on <= {date_literal(start + dt.timedelta(days=30))}),
                count(*),
                sum(value_at_risk),
                count(*) filter (where is_assigned)
            from {q('voucher_expiry')}
            where expires_on >= {date_literal(start)}
                and expires_on <= {date_literal(start + dt.timedelta(days=90))}
            """
        )[0]
    purchases, paid, value_used, value_redeemable, breakage = (money[0], *(float(v or 0) for v in money[1:]))
    soon_30, value_30, soon_90, value_90, assigned_90 = soon
    share = 100 * used / vouchers if vouchers else 0.0
    assigned_share = 100 * assigned_90 / soon_90 if soon_90 else 0.0
    return [
        f"As of {built_for or start}: {vouchers:,} vouchers on {purchases:,} purchases; {used:,} used ({share:.1f}%), "
        f"{redeemable:,} still redeemable, {expired:,} expired unused, {deactivated:,} deactivated.",
        f"Money: {paid:,.2f} paid; value used {value_used:,.2f}, still redeemable {value_redeemable:,.2f}, "
        f"lost to expiry (breakage) {breakage:,.2f}.",
        f"Expiring from {start}: {soon_30:,} unused vouchers worth {float(value_30 or 0):,.2f} within 30 days, "
        f"{soon_90:,} worth {float(value_90 or 0):,.2f} within 90 days ({assigned_share:.0f}% of those assigned).",
    ]
