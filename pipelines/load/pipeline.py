"""What a load writes and how: the resources, the file format per destination, the vouchers resource's
state. (dlt's pipeline itself is made by the run context, ``pipelines/context.py``.)"""

from __future__ import annotations

from typing import Any

import dlt

RESOURCES = ("partners", "programs", "purchases", "vouchers")
# Columnar files load ~30x faster than dlt's default INSERT statements: on 100k voucher-shaped rows
# insert_values took ~26 s into DuckDB, parquet ~0.8 s; for Postgres the fast path is csv (COPY).
FILE_FORMATS = {"duckdb": "parquet", "postgres": "csv"}


def vouchers_state(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """The vouchers resource's local state after the last run: ``mode`` (full or nightly), the rolling
    re-check's ``night``, ``read_at`` (the API's clock when it read), the plan's counts."""
    if not pipeline.default_schema_name:
        return {}
    return dict(resource_state(pipeline.state))


def resource_state(state: dict[str, Any]) -> dict[str, Any]:
    """The vouchers resource's part of a pipeline state (local, or as the warehouse stored it)."""
    return state.get("sources", {}).get("certiverse", {}).get("resources", {}).get("vouchers", {})
