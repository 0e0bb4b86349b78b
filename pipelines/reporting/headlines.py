"""The headline figures a run reports, read from the marts (DuckDB and Postgres alike): numbers for
``--json``, sentences for people."""

from __future__ import annotations

import datetime as dt
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any, ContextManager

from ..context import RunContext
from ..transform import today_utc


@dataclass(frozen=True)
class Headlines:
    """The marts' headline figures. Counts are vouchers unless named otherwise; money in the
    purchases' currency; ``expiring_*`` are unused vouchers expiring within that many days of
    ``window_start`` (and their value)."""

    built_for: dt.date | None  # the as-of date the marts were built for
    window_start: dt.date  # where the expiry windows start
    vouchers: int
    purchases: int
    used: int
    redeemable: int
    expired_unused: int
    deactivated: int
    amount_paid: float
    value_used: float
    value_redeemable: float
    breakage: float  # value lost to expiry
    expiring_30: int
    value_expiring_30: float
    expiring_90: int
    value_expiring_90: float
    assigned_expiring_90: int  # of those expiring within 90 days, assigned to someone

    @property
    def used_share(self) -> float:
        """Percent of vouchers used."""
        return 100 * self.used / self.vouchers if self.vouchers else 0.0

    @property
    def assigned_share_90(self) -> float:
        """Percent of the vouchers expiring within 90 days that are assigned."""
        return 100 * self.assigned_expiring_90 / self.expiring_90 if self.expiring_90 else 0.0

    def sentences(self) -> list[str]:
        """Three lines a person reads: utilization, money, what expires soon."""
        return [
            f"As of {self.built_for}: {self.vouchers:,} vouchers on {self.purchases:,} purchases; {self.used:,} used "
            f"({self.used_share:.1f}%), {self.redeemable:,} still redeemable, {self.expired_unused:,} expired unused, "
            f"{self.deactivated:,} deactivated.",
            f"Money: {self.amount_paid:,.2f} paid; value used {self.value_used:,.2f}, still redeemable "
            f"{self.value_redeemable:,.2f}, lost to expiry (breakage) {self.breakage:,.2f}.",
            f"Expiring from {self.window_start}: {self.expiring_30:,} unused vouchers worth "
            f"{self.value_expiring_30:,.2f} within 30 days, {self.expiring_90:,} worth {self.value_expiring_90:,.2f} "
            f"within 90 days ({self.assigned_share_90:.0f}% of those assigned).",
        ]

    def as_dict(self) -> dict[str, Any]:
        """The figures for ``--json``: numbers, and dates as ``YYYY-MM-DD``."""
        out = asdict(self)
        out["built_for"] = self.built_for.isoformat() if self.built_for else None
        out["window_start"] = self.window_start.isoformat()
        return out


def date_literal(day: dt.date) -> str:
    """A date literal DuckDB and Postgres both read."""
    return f"cast('{day.isoformat()}' as date)"


def _open(context_or_client: Any) -> ContextManager[Any]:
    """A run context's SQL client to open, or an already open client to use as it is."""
    if isinstance(context_or_client, RunContext):
        return context_or_client.sql_client()
    return nullcontext(context_or_client)


def headlines(context_or_client: Any, as_of: dt.date | None = None) -> Headlines:
    """The headline figures of the marts: utilization, money, what expires soon.

    ``context_or_client`` is a run context or an open dlt SQL client. Windows
    ("within 30 days") count from ``as_of``, default the date the marts were built for.
    """
    with _open(context_or_client) as client:
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
    purchases, paid, value_used, value_redeemable, breakage = (money[0], *(_money(v) for v in money[1:]))
    soon_30, value_30, soon_90, value_90, assigned_90 = soon
    return Headlines(
        built_for=built_for, window_start=start, vouchers=vouchers, purchases=purchases, used=used,
        redeemable=redeemable, expired_unused=expired, deactivated=deactivated, amount_paid=paid,
        value_used=value_used, value_redeemable=value_redeemable, breakage=breakage, expiring_30=soon_30,
        value_expiring_30=_money(value_30), expiring_90=soon_90, value_expiring_90=_money(value_90),
        assigned_expiring_90=assigned_90,
    )


def _money(value: Any) -> float:
    """A sum of money from SQL (Decimal, float, or None for an empty sum), to the cent."""
    return round(float(value or 0), 2)
