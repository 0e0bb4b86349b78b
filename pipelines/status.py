"""`certiverse status`: is the warehouse fresh, and what did the pipeline leave behind?"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from .load import table_counts


def last_successful_load(pipeline: dlt.Pipeline) -> dt.datetime | None:
    """When the destination last completed a load of this pipeline's schema (from dlt's `_dlt_loads`)."""
    try:
        with pipeline.sql_client() as client:
            loads = client.make_qualified_table_name("_dlt_loads")
            row = client.execute_sql(f"select max(inserted_at) from {loads} where status = 0")
    except DatabaseUndefinedRelation:
        return None
    value = row[0][0] if row else None
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value


def pipeline_status(pipeline: dlt.Pipeline, freshness_hours: float = 36.0, now: dt.datetime | None = None) -> dict[str, Any]:
    """Last run and its age, rolling re-check position, pending packages, row counts, staleness."""
    now = now or dt.datetime.now(dt.timezone.utc)
    last = last_successful_load(pipeline) if pipeline.default_schema_name else None
    age_hours = (now - last).total_seconds() / 3600 if last else None
    vouchers_state: dict[str, Any] = {}
    if pipeline.default_schema_name:
        resources = pipeline.state.get("sources", {}).get("certiverse", {}).get("resources", {})
        vouchers_state = dict(resources.get("vouchers", {}))
    return {
        "pipeline": pipeline.pipeline_name,
        "destination": pipeline.destination.destination_name if pipeline.destination else None,
        "last_success_at": last.isoformat() if last else None,
        "age_hours": round(age_hours, 2) if age_hours is not None else None,
        "freshness_limit_hours": freshness_hours,
        "stale": age_hours is None or age_hours > freshness_hours,
        "pending_packages": list(pipeline.list_extracted_load_packages())
        + list(pipeline.list_normalized_load_packages()),
        "last_mode": vouchers_state.get("mode"),
        "recheck_night": vouchers_state.get("night"),
        "last_full_at": vouchers_state.get("last_full_at"),
        "last_nightly": vouchers_state.get("last_nightly"),
        "rows": table_counts(pipeline) if last else {},
    }


def format_status(status: dict[str, Any]) -> str:
    """The status as a few lines a person reads at a glance."""
    if status["last_success_at"] is None:
        head = f"NEVER LOADED: pipeline '{status['pipeline']}' has no successful load yet"
    else:
        verdict = "STALE" if status["stale"] else "OK"
        head = (f"{verdict}: last successful load {status['last_success_at']} "
                f"({status['age_hours']:.1f} h ago; limit {status['freshness_limit_hours']:g} h)")
    lines = [head]
    if status["last_mode"]:
        lines.append(f"last voucher read: {status['last_mode']}; rolling re-check night {status['recheck_night']}"
                     f"; last full read {status['last_full_at']}")
    pending = status["pending_packages"]
    lines.append(f"pending packages: {len(pending)}" + (" (the next run finishes them first)" if pending else ""))
    if status["rows"]:
        lines.append("rows: " + ", ".join(f"{t} {n:,}" for t, n in status["rows"].items() if "__" not in t))
    return "\n".join(lines)
