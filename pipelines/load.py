"""Build and run the Certiverse → warehouse pipeline."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from sources.certiverse import RequestStats, certiverse_source

from .snapshot import read_snapshot

log = logging.getLogger(__name__)

PIPELINE_NAME = "certiverse"
DATASET_NAME = "certiverse"
RESOURCES = ("partners", "programs", "purchases", "vouchers")
# dlt's own default, <pipeline>.duckdb, is certiverse.duckdb: DuckDB then cannot tell the
# file's catalog from the dataset `certiverse` ("Ambiguous reference to catalog or schema").
DEFAULT_DUCKDB_FILE = "warehouse.duckdb"
DUCKDB_MEMORY_LIMIT = "128MB"
# Columnar files load ~30x faster than dlt's default INSERT statements (shared/dlt-notes.md).
FILE_FORMATS = {"duckdb": "parquet", "postgres": "csv"}


@dataclass
class LoadResult:
    """What one run did: dlt's load info, request counters, and its duration."""

    info: LoadInfo | None
    stats: RequestStats
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    extracted: dict[str, int] = field(default_factory=dict)  # rows this run read, per table
    written: dict[str, int] = field(default_factory=dict)  # rows this run added (new or changed), root tables


def make_destination(destination: str = "duckdb", credentials: Any = None) -> Any:
    """A dlt destination; ``credentials`` None means dlt's config (`.dlt/`, env)."""
    if destination == "duckdb":
        target = credentials or dlt.secrets.get("destination.duckdb.credentials") or DEFAULT_DUCKDB_FILE
        if isinstance(target, str):
            # DuckDB may take 80% of RAM for a merge; past this limit it spills to disk instead,
            # so the run's memory does not grow with the tenant.
            limit = dlt.config.get("destination.duckdb.memory_limit") or DUCKDB_MEMORY_LIMIT
            target = DuckDbCredentials(target, global_config={"memory_limit": str(limit)})
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
) -> dlt.Pipeline:
    """The project's pipeline on DuckDB (default) or Postgres."""
    kwargs: dict[str, Any] = {}
    if pipelines_dir:
        kwargs["pipelines_dir"] = pipelines_dir
    if progress:
        kwargs["progress"] = progress
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=make_destination(destination, credentials),
        dataset_name=dataset_name,
        **kwargs,
    )


class PipelineBusyError(RuntimeError):
    """Another run holds this pipeline."""


@contextmanager
def exclusive(pipeline: dlt.Pipeline) -> Iterator[None]:
    """Hold the pipeline's lock file; a second run at once refuses instead of corrupting state."""
    os.makedirs(pipeline.pipelines_dir, exist_ok=True)
    path = os.path.join(pipeline.pipelines_dir, f"{pipeline.pipeline_name}.lock")
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineBusyError(
                f"pipeline '{pipeline.pipeline_name}' is already running (lock {path}); try again when it ends"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_load(
    pipeline: dlt.Pipeline,
    *,
    base_url: str | None = None,
    api_token: str | None = None,
    full_refresh: bool = False,
    source_options: dict[str, Any] | None = None,
    stats: RequestStats | None = None,
) -> LoadResult:
    """Finish what an earlier run left pending, then extract and load what can have changed.

    The first run, and ``full_refresh``, read everything; later runs read the
    nightly plan against what the warehouse holds. base_url/api_token None means
    dlt's config. ``stats`` lets a caller watch requests while the run goes on.
    """
    stats = stats or RequestStats()
    options = dict(source_options or {})
    if base_url:
        options["base_url"] = base_url
    if api_token:
        options["api_token"] = api_token
    started = time.monotonic()
    # Vouchers come as Arrow tables, which dlt writes without _dlt_load_id unless told to;
    # rows_written() and analysts tell loads apart by it.
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    file_format = FILE_FORMATS.get(pipeline.destination.destination_name)
    with exclusive(pipeline):
        if pipeline.has_pending_data:
            # run() with pending packages only loads them and returns without extracting.
            log.warning("finishing the load an earlier run left pending")
            pipeline.run(loader_file_format=file_format)
        if not pipeline.default_schema_name:
            # A fresh pipelines folder (a new machine, a CI runner): take state and schema from
            # the destination, or every run there would be a full read.
            pipeline.sync_destination()
        previous = None if full_refresh else read_snapshot(pipeline)
        source = certiverse_source(stats=stats, full_refresh=full_refresh, previous=previous, **options)
        info = pipeline.run(source, loader_file_format=file_format)
    seconds = time.monotonic() - started
    extracted = dict(pipeline.last_trace.last_normalize_info.row_counts) if pipeline.last_trace else {}
    return LoadResult(
        info=info,
        stats=stats,
        seconds=seconds,
        rows=table_counts(pipeline),
        extracted={t: n for t, n in extracted.items() if not t.startswith("_dlt")},
        written=rows_written(pipeline, info.loads_ids if info else []),
    )


def table_counts(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows per data table of the pipeline's dataset (dlt's own tables left out)."""
    counts: dict[str, int] = {}
    schema = pipeline.default_schema
    with pipeline.sql_client() as client:
        for name in sorted(schema.data_table_names()):
            if not name.startswith("_dlt"):
                qualified = client.make_qualified_table_name(name)
                counts[name] = client.execute_sql(f"select count(*) from {qualified}")[0][0]
    return counts


def rows_written(pipeline: dlt.Pipeline, load_ids: list[str]) -> dict[str, int]:
    """Rows the given loads wrote to each root table: all read rows for merged tables, only new
    or changed versions for the vouchers history."""
    if not load_ids:
        return {}
    written: dict[str, int] = {}
    placeholders = ", ".join(["%s"] * len(load_ids))
    with pipeline.sql_client() as client:
        for name in RESOURCES:
            if name in pipeline.default_schema.tables:
                qualified = client.make_qualified_table_name(name)
                written[name] = client.execute_sql(
                    f"select count(*) from {qualified} where _dlt_load_id in ({placeholders})", *load_ids
                )[0][0]
    return written
