"""The warehouse, not dlt's local state, is the truth of what was loaded.

dlt keeps pipeline state and schemas in a local folder and a copy of the state in
the warehouse with every load (``_dlt_pipeline_state``, one row per state version).
The two part ways when people delete the DuckDB file, point the loader at another
one, or restore a backup, while the local folder stays behind. Before each load
the local state is brought in line with the warehouse:

* the warehouse holds no state of this pipeline (new, empty or deleted): the local
  state and any pending packages describe a warehouse that is gone; they are
  dropped and everything is read;
* the warehouse holds an older state than the local one, and the packages still
  pending do not account for the gap: loads the local state remembers are
  missing (a restored backup). Local state is dropped, the warehouse's is taken,
  and everything is read: which changes the warehouse lacks cannot be known;
* otherwise pending packages are finished and dlt's own sync takes a newer
  warehouse state (another machine loaded since).

dlt bumps the state version once per extract that changes state, and the
vouchers resource changes its state on every run, so "one version per load" is
what the comparison relies on.
"""

from __future__ import annotations

import logging
from typing import Any

import dlt
from dlt.common.versioned_state import decompress_state

log = logging.getLogger(__name__)

STATE_TABLE = "_dlt_pipeline_state"


def tables(client: Any) -> set[str]:
    """Tables and views in the client's dataset, as the warehouse has them (not as the local schema says)."""
    rows = client.execute_sql(
        "select table_name from information_schema.tables where table_schema = %s", client.dataset_name
    )
    return {name for (name,) in rows or ()}


def columns(client: Any, table: str) -> set[str]:
    """Column names of one table of the client's dataset, from the warehouse."""
    rows = client.execute_sql(
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s",
        client.dataset_name, table,
    )
    return {name for (name,) in rows or ()}


def stored_state_version(pipeline: dlt.Pipeline) -> int | None:
    """The newest state version of this pipeline the warehouse holds; None if it holds none."""
    with pipeline.sql_client() as client:
        if STATE_TABLE not in tables(client):
            return None
        rows = client.execute_sql(
            f"select max(version) from {client.make_qualified_table_name(STATE_TABLE)} where pipeline_name = %s",
            pipeline.pipeline_name,
        )
    return rows[0][0] if rows and rows[0][0] is not None else None


def stored_state(client: Any, pipeline_name: str) -> dict[str, Any] | None:
    """The newest state of this pipeline the warehouse holds from a completed load (what dlt's own
    sync restores), through an open SQL client; None if it holds none."""
    present = tables(client)
    if STATE_TABLE not in present or "_dlt_loads" not in present:
        return None
    rows = client.execute_sql(
        f"select s.state from {client.make_qualified_table_name(STATE_TABLE)} as s "
        f"join {client.make_qualified_table_name('_dlt_loads')} as l on l.load_id = s._dlt_load_id "
        "where s.pipeline_name = %s and l.status = 0 order by l.load_id desc limit 1",
        pipeline_name,
    )
    return decompress_state(rows[0][0]) if rows else None


def pending_packages(pipeline: dlt.Pipeline) -> int:
    return len(pipeline.list_extracted_load_packages()) + len(pipeline.list_normalized_load_packages())


def align_with_warehouse(pipeline: dlt.Pipeline) -> str | None:
    """Bring local state in line with the warehouse; returns why everything must be read, or None.

    Pending packages are finished (normalized, loaded) only when they belong to the warehouse as
    it is; then dlt's sync takes a newer state of the warehouse, as ``run()`` does before a read.
    """
    stored = stored_state_version(pipeline)
    local = int(pipeline.state.get("_state_version", 0)) if pipeline.default_schema_name else 0
    pending = pending_packages(pipeline)
    if stored is None:
        if local or pending:
            log.warning("the warehouse holds nothing of pipeline '%s' (new, emptied or deleted): dropping local "
                        "state and %d pending package(s) of the warehouse that was there, reading everything",
                        pipeline.pipeline_name, pending)
            pipeline.drop()
        return "the warehouse holds no earlier load" if local or pending else None
    if local > stored + pending:
        log.warning("the warehouse holds state version %d of pipeline '%s', the local state %d with %d package(s) "
                    "pending: loads are missing from the warehouse (restored from a backup?). Taking the "
                    "warehouse's state and reading everything", stored, pipeline.pipeline_name, local, pending)
        pipeline.drop()
        pipeline.sync_destination()
        return f"the warehouse is behind the pipeline's local state (version {stored} < {local})"
    if pending:
        log.warning("finishing the load an earlier run left pending")
        if pipeline.list_extracted_load_packages():
            pipeline.normalize()
        pipeline.load()
    # Another machine loaded since (a newer state there), or a fresh pipelines folder (a new machine, a CI
    # runner, a warehouse loaded by an earlier version): the snapshot needs the schema, and the nightly
    # plan the state, from the warehouse now.
    pipeline.sync_destination()
    return None
