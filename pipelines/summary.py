"""Read-back figures for the CLI's summary: plain SQL on the loaded tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

import dlt


def voucher_figures(pipeline: dlt.Pipeline, as_of: dt.datetime) -> dict[str, int]:
    """Vouchers used, unused and still redeemable, expired unused, and deactivated, as of a moment."""
    with pipeline.sql_client() as client:
        vouchers = client.make_qualified_table_name("vouchers")
        row = client.execute_sql(
            f"""
            select
                count(*),
                sum(case when is_used then 1 else 0 end),
                sum(case when not is_used and is_active and expiration_date_utc >= %s then 1 else 0 end),
                sum(case when not is_used and is_active and expiration_date_utc < %s then 1 else 0 end),
                sum(case when not is_used and not is_active then 1 else 0 end)
            from {vouchers}
            """,
            as_of,
            as_of,
        )[0]
    keys = ("vouchers", "used", "unused_redeemable", "expired_unused", "deactivated_unused")
    return {k: int(v or 0) for k, v in zip(keys, row)}


def format_summary(
    rows: dict[str, int],
    requests: dict[str, dict[str, int]],
    seconds: float,
    vouchers: dict[str, int] | None = None,
) -> str:
    """A few lines a person can read after a run."""
    lines = [f"Loaded in {seconds:.1f}s. Rows per table:"]
    width = max((len(t) for t in rows), default=10)
    lines += [f"  {table:<{width}}  {n:>10,}" for table, n in rows.items()]
    total = sum(sum(o.values()) for o in requests.values())
    lines.append(f"API requests: {total:,}")
    for endpoint, outcomes in requests.items():
        shown = ", ".join(f"{outcome}: {n:,}" for outcome, n in outcomes.items())
        lines.append(f"  {endpoint:<10} {shown}")
    if vouchers:
        n = max(vouchers["vouchers"], 1)
        lines.append(
            "Vouchers: {vouchers:,} in all; {used:,} used ({pct:.1f}%), {unused_redeemable:,} unused and "
            "redeemable, {expired_unused:,} expired unused, {deactivated_unused:,} deactivated".format(
                pct=100 * vouchers["used"] / n, **vouchers
            )
        )
    return "\n".join(lines)


def as_json(result: Any) -> dict[str, Any]:
    """The machine-readable summary of a run."""
    return {
        "seconds": round(result.seconds, 3),
        "rows": result.rows,
        "requests": result.stats.as_dict(),
    }
