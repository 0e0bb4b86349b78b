"""Helpers shared by the end-to-end tests: run the source, compare a warehouse (a run context) with the simulator."""

from __future__ import annotations

import datetime as dt
import decimal
from collections import Counter
from typing import Any, Iterable

from dlt.common.normalizers.naming.snake_case import NamingConvention

from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.sources.certiverse import certiverse_source
from certiverse_warehouse.sources.certiverse.columnar import CONTENT_HASH

RESOURCES = ("partners", "programs", "purchases", "vouchers")
TOKEN = "sim-token"
_naming = NamingConvention()


def extract(base_url: str, resources: Iterable[str] = RESOURCES, **config: Any) -> dict[str, list[dict]]:
    """Run the source without a destination (its vouchers unbound: a full read); records per resource as
    the source yields them (vouchers come as Arrow tables: their rows are flat, snake_case dicts)."""
    source = certiverse_source(base_url=base_url, api_token=TOKEN, **config).with_resources(*resources)
    out: dict[str, list[dict]] = {r: [] for r in resources}
    for name in resources:
        for item in source.resources[name]:
            if hasattr(item, "to_pylist"):
                item = item.to_pylist()
            out[name].extend(item if isinstance(item, list) else [item])
    return out


def ids(records: Iterable[dict]) -> Counter:
    return Counter(r["id"] for r in records)


def flatten(record: dict, prefix: str = "") -> dict[str, Any]:
    """An API record as dlt's root-table columns: snake_case, nested objects flattened, lists left out."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = prefix + _naming.normalize_identifier(key)
        if isinstance(value, dict):
            out.update(flatten(value, name + "__"))
        elif not isinstance(value, list):
            out[name] = value
    return out


def normalise(value: Any) -> Any:
    """Compare API values with warehouse values: timestamps as UTC instants, decimals as rounded floats."""
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.timezone.utc)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc) if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, (float, decimal.Decimal)):
        return round(float(value), 2)
    return value


def current_rows(context: RunContext, table: str) -> dict[str, dict[str, Any]]:
    """Rows of a table by id; for the scd2 vouchers table only the current version of each."""
    with context.sql_client() as client:
        qualified = client.make_qualified_table_name(table)
        columns = context.pipeline.default_schema.get_table_columns(table)
        where = " where _dlt_valid_to is null" if "_dlt_valid_to" in columns else ""
        with client.execute_query(f"select * from {qualified}{where}") as cursor:
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        assert row["id"] not in by_id, f"duplicate current row for {table} id {row['id']}"
        by_id[row["id"]] = row
    return by_id


def differences(context: RunContext, table: str, truth: list[dict], limit: int = 5) -> list[str]:
    """Where the warehouse's current rows differ from the API's records, field by field (empty = equal)."""
    rows = current_rows(context, table)
    problems: list[str] = []
    expected_ids = {r["id"] for r in truth}
    missing = expected_ids - rows.keys()
    extra = rows.keys() - expected_ids
    if missing:
        problems.append(f"{table}: {len(missing)} ids missing, e.g. {sorted(missing)[:3]}")
    if extra:
        problems.append(f"{table}: {len(extra)} ids not in the API, e.g. {sorted(extra)[:3]}")
    for record in truth:
        row = rows.get(record["id"])
        if row is None:
            continue
        fields = flatten(record)
        for column in set(fields) | {c for c in row if not c.startswith("_dlt") and c != CONTENT_HASH and row[c] is not None}:
            if normalise(fields.get(column)) != normalise(row.get(column)):
                problems.append(f"{table} {record['id']} {column}: api={fields.get(column)!r} warehouse={row.get(column)!r}")
                if len(problems) >= limit:
                    return problems
    return problems
