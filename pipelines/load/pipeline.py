"""The project's dlt pipeline: its destination (DuckDB or Postgres) and where its DuckDB file is."""

from __future__ import annotations

import os
from typing import Any

import dlt
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

PIPELINE_NAME = "certiverse"
DATASET_NAME = "certiverse"
RESOURCES = ("partners", "programs", "purchases", "vouchers")
# dlt's own default, <pipeline>.duckdb, is certiverse.duckdb: DuckDB then cannot tell the
# file's catalog from the dataset `certiverse` ("Ambiguous reference to catalog or schema").
DEFAULT_DUCKDB_FILE = "warehouse.duckdb"
DUCKDB_MEMORY_LIMIT = "128MB"
# Columnar files load ~30x faster than dlt's default INSERT statements: on 100k voucher-shaped rows
# insert_values took ~26 s into DuckDB, parquet ~0.8 s; for Postgres the fast path is csv (COPY).
FILE_FORMATS = {"duckdb": "parquet", "postgres": "csv"}


def make_destination(destination: str = "duckdb", credentials: Any = None, *, read_only: bool = False) -> Any:
    """A dlt destination; ``credentials`` None means dlt's config (`.dlt/`, env).

    ``read_only`` opens a DuckDB file for reading only, so that other readers do not lock it out
    (`status`, `report`).
    """
    if destination == "duckdb":
        target = credentials or dlt.secrets.get("destination.duckdb.credentials") or DEFAULT_DUCKDB_FILE
        if isinstance(target, str) and not target.startswith(":"):
            # Relative to where the command runs. Given a relative path, dlt would take a path an
            # earlier run of the same pipeline stored in its state (another folder: seen with the
            # shared default pipelines folder), or dlt's local_dir, not this folder.
            target = os.path.abspath(target)
        if isinstance(target, str):
            # DuckDB may take 80% of RAM for a merge; past this limit it spills to disk instead,
            # so the run's memory does not grow with the tenant.
            limit = dlt.config.get("destination.duckdb.memory_limit") or DUCKDB_MEMORY_LIMIT
            target = DuckDbCredentials(target, read_only=read_only, global_config={"memory_limit": str(limit)})
        return dlt.destinations.duckdb(credentials=target)
    if destination == "postgres":
        return dlt.destinations.postgres(credentials=credentials) if credentials else dlt.destinations.postgres()
    raise ValueError(f"unknown destination {destination!r}: use duckdb or postgres")


def make_pipeline(
    destination: str = "duckdb",
    credentials: Any = None,
    *,
    pipelines_dir: str | None = None,
    pipeline_name: str = PIPELINE_NAME,
    dataset_name: str = DATASET_NAME,
    progress: Any = None,
    read_only: bool = False,
) -> dlt.Pipeline:
    """The project's pipeline on DuckDB (default) or Postgres (``read_only``: see :func:`make_destination`)."""
    kwargs: dict[str, Any] = {}
    if pipelines_dir:
        kwargs["pipelines_dir"] = pipelines_dir
    if progress:
        kwargs["progress"] = progress
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=make_destination(destination, credentials, read_only=read_only),
        dataset_name=dataset_name,
        **kwargs,
    )
    # dlt's own SIGINT/SIGTERM handler, installed around its normalize and load steps, records a
    # signal and forgets it when the step ends: a run stopped while loading went on to the end.
    # Python's default (or the CLI's handler, pipelines/cli/stopping.py) stays in charge instead.
    pipeline.runtime_config.intercept_signals = False
    return pipeline


def duckdb_file(pipeline: dlt.Pipeline) -> str | None:
    """The pipeline's DuckDB file, or None for other destinations."""
    if pipeline.destination.destination_name != "duckdb":
        return None
    credentials = pipeline.destination.config_params.get("credentials")
    database = getattr(credentials, "database", credentials)
    return os.path.abspath(database) if isinstance(database, str) else None


def vouchers_state(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """The vouchers resource's state after the last run: ``mode`` (full or nightly), the rolling re-check's
    ``night``, ``read_at`` (the API's clock when it read), the plan's counts."""
    if not pipeline.default_schema_name:
        return {}
    state = pipeline.state.get("sources", {}).get("certiverse", {}).get("resources", {}).get("vouchers", {})
    return dict(state)
