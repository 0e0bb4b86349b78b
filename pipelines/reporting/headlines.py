"""The headline figures a run prints, and the report leads with: the one row of the mart
``headline_figures`` (DuckDB and Postgres alike), as numbers and as sentences.

The figures are worked out by dbt (``transforms/models/marts/headline_figures.sql``), where they
are tested and where BI tools read the same; this module only selects the row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager

from ..context import RunContext
from ..load.warehouse import tables

MART = "headline_figures"


class HeadlinesError(RuntimeError):
    """The mart of the headline figures is missing or empty: the marts were not built."""


@dataclass(frozen=True)
class Headlines:
    """The row of ``headline_figures``: one field per column, with the column's name and value.

    Counts are ``int``; money, shares and rates are ``decimal.Decimal`` (money with 2 decimals,
    shares from 0 to 1 with 4); ``utilization_rate`` and ``assigned_share_expiring_90_days``
    are None without vouchers to divide by.
    """

    as_of_date: dt.date
    reporting_timezone: str
    idle_after_days: int
    purchases: int
    vouchers_issued: int
    vouchers_used: int
    vouchers_redeemable: int
    vouchers_expired_unused: int
    vouchers_deactivated: int
    utilization_rate: decimal.Decimal | None
    amount_paid: decimal.Decimal
    value_used: decimal.Decimal
    value_redeemable: decimal.Decimal
    value_expired_unused: decimal.Decimal
    purchases_idle: int
    value_idle: decimal.Decimal
    vouchers_expiring_30_days: int
    value_expiring_30_days: decimal.Decimal
    vouchers_expiring_90_days: int
    value_expiring_90_days: decimal.Decimal
    vouchers_assigned_expiring_90_days: int
    assigned_share_expiring_90_days: decimal.Decimal | None

    def sentences(self) -> list[str]:
        """Three readable lines: utilization, money, what expires soon."""
        used_share = 100 * (self.utilization_rate or 0)
        assigned_share = 100 * (self.assigned_share_expiring_90_days or 0)
        return [
            f"As of {self.as_of_date} ({self.reporting_timezone}): {self.vouchers_issued:,} vouchers on "
            f"{self.purchases:,} purchases; {self.vouchers_used:,} used ({used_share:.1f}%), "
            f"{self.vouchers_redeemable:,} still redeemable, {self.vouchers_expired_unused:,} expired unused, "
            f"{self.vouchers_deactivated:,} deactivated.",
            f"Money: {self.amount_paid:,.2f} paid; value used {self.value_used:,.2f}, still redeemable "
            f"{self.value_redeemable:,.2f}, lost to expiry (breakage) {self.value_expired_unused:,.2f}.",
            f"Expiring from {self.as_of_date}: {self.vouchers_expiring_30_days:,} unused vouchers worth "
            f"{self.value_expiring_30_days:,.2f} within 30 days, {self.vouchers_expiring_90_days:,} worth "
            f"{self.value_expiring_90_days:,.2f} within 90 days ({assigned_share:.0f}% of those assigned).",
        ]

    def as_dict(self) -> dict[str, Any]:
        """The figures for ``--json`` (``headlines``), named as the mart's columns: the date as
        ``YYYY-MM-DD``, counts as integers, decimals as JSON numbers (a decimal of 2 or 4 places prints
        as exactly those digits)."""
        return {name: _json_value(value) for name, value in dataclasses.asdict(self).items()}


FIELDS = tuple(field.name for field in dataclasses.fields(Headlines))


def _json_value(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _open(context_or_client: Any) -> ContextManager[Any]:
    """A run context's SQL client to open, or an already open client to use as it is."""
    if isinstance(context_or_client, RunContext):
        return context_or_client.sql_client()
    return nullcontext(context_or_client)


def headlines(context_or_client: Any) -> Headlines:
    """The headline figures of the marts as they were last built (their as-of date is in them).

    ``context_or_client`` is a run context or an open dlt SQL client. Raises HeadlinesError
    when the mart is missing or empty.
    """
    with _open(context_or_client) as client:
        if MART not in tables(client):
            raise HeadlinesError(f"no {MART} in dataset {client.dataset_name}: build the marts with "
                                 "`certiverse transform` (or `certiverse run`)")
        rows = client.execute_sql(f"select {', '.join(FIELDS)} from {client.make_qualified_table_name(MART)}")
    if not rows:
        raise HeadlinesError(f"{MART} is empty: build the marts again with `certiverse transform`")
    values = dict(zip(FIELDS, rows[0]))
    # DuckDB gives dates; a Postgres driver may give a datetime for a date cast
    if isinstance(values["as_of_date"], dt.datetime):
        values["as_of_date"] = values["as_of_date"].date()
    return Headlines(**values)


__all__ = ["FIELDS", "MART", "Headlines", "HeadlinesError", "headlines"]
