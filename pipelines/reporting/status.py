"""`certiverse status`: is the warehouse fresh, and what did the pipeline leave behind?"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..context import RunContext
from ..load import table_counts
from ..load.counters import last_check
from ..load.pipeline import resource_state
from ..load.warehouse import stored_state, tables
from ..publishing import published_info


def last_successful_load(client: Any) -> dt.datetime | None:
    """When the destination last completed a load (from dlt's `_dlt_loads`), through an open SQL client."""
    if "_dlt_loads" not in tables(client):
        return None
    row = client.execute_sql(f"select max(inserted_at) from {client.make_qualified_table_name('_dlt_loads')} "
                             "where status = 0")
    value = row[0][0] if row else None
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def pipeline_status(context: RunContext, freshness_hours: float = 36.0,
                    now: dt.datetime | None = None) -> dict[str, Any]:
    """Last run and its age, rolling re-check position, pending packages, row counts, staleness.

    What was loaded and how the vouchers were read come from the warehouse (its loads and the state
    stored with them), whatever local state this machine has; pending packages are local by nature.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    pipeline = context.pipeline
    last, check, rows, state = None, None, {}, {}
    if _warehouse_exists(context):
        with context.sql_client() as client:
            last = last_successful_load(client)
            check = last_check(client)
            state = resource_state(stored_state(client, context.pipeline_name) or {})
            rows = table_counts(pipeline, client) if last and pipeline.default_schema_name else {}
    age_hours = (now - last).total_seconds() / 3600 if last else None
    return {
        "pipeline": context.pipeline_name,
        "warehouse": context.warehouse.name,
        "destination": context.warehouse.destination,
        "state_dir": str(context.state_dir),
        "last_success_at": last.isoformat() if last else None,
        "age_hours": round(age_hours, 2) if age_hours is not None else None,
        "freshness_limit_hours": freshness_hours,
        "stale": age_hours is None or age_hours > freshness_hours,
        "pending_packages": list(pipeline.list_extracted_load_packages())
        + list(pipeline.list_normalized_load_packages()),
        "last_mode": state.get("mode"),
        "recheck_night": state.get("night"),
        "last_full_at": state.get("last_full_at"),
        "last_nightly": state.get("last_nightly"),
        "rows": rows,
        "counter_check": check,
        "published": published_info(context.publish) if context.publish else None,
    }


def format_status(status: dict[str, Any]) -> str:
    """The status as a few lines a person reads at a glance."""
    if status["last_success_at"] is None:
        head = f"NEVER LOADED: {status['warehouse']} has no successful load yet"
    else:
        verdict = "STALE" if status["stale"] else "OK"
        head = (f"{verdict}: last successful load {status['last_success_at']} "
                f"({status['age_hours']:.1f} h ago; limit {status['freshness_limit_hours']:g} h)")
    lines = [head]
    if status["last_mode"]:
        lines.append(f"last voucher read: {status['last_mode']}; rolling re-check night {status['recheck_night']}"
                     f"; last full read {status['last_full_at']}")
    pending = status["pending_packages"]
    lines.append(f"pending packages: {len(pending)}" + (" (the next run finishes them first)" if pending else "")
                 + f"; local state: {status['state_dir']}")
    if status["rows"]:
        lines.append("rows: " + ", ".join(f"{t} {n:,}" for t, n in status["rows"].items() if "__" not in t))
    check = status.get("counter_check")
    if check:
        lines.append(f"counter check {check['checked_at']}: {check['purchases_checked']:,} purchases checked, "
                     f"{check['purchases_repaired']:,} repaired, {check['purchases_api_accounting']:,} differ by the "
                     "API's own accounting")
    published = status.get("published")
    if published:
        when = published["published_at"] or "not yet written"
        lines.append(f"published for readers ({when}): {published['duckdb_file']}"
                     + (f", {published['parquet_dir']}" if published["parquet_dir"] else ""))
    return "\n".join(lines)


def _warehouse_exists(context: RunContext) -> bool:
    """Whether there is a warehouse to ask (a DuckDB file is not created just to say it is empty)."""
    path = context.warehouse.duckdb_file
    return path is None or path.exists()
