"""One load: local state in line with the warehouse, the extract and load, the counter check, the figures."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import dlt
from dlt.common.pipeline import LoadInfo

from ...sources.certiverse import RequestStats, certiverse_source

from ..locks import exclusive, retry_when_locked
from . import counters
from .child_tables import create_declared_child_tables
from .counters import CounterCheck
from .pipeline import FILE_FORMATS, RESOURCES, duckdb_file, vouchers_state
from .snapshot import read_snapshot
from .warehouse import align_with_warehouse, tables

log = logging.getLogger(__name__)


@dataclass
class LoadResult:
    """What one run did: dlt's load info, request counters, and its duration."""

    info: LoadInfo | None
    stats: RequestStats
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    extracted: dict[str, int] = field(default_factory=dict)  # rows this run read, per table
    written: dict[str, int] = field(default_factory=dict)  # rows this run added (new or changed), root tables
    counter_check: CounterCheck | None = None
    full_read_reason: str | None = None  # why everything was read though the warehouse had data
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step of the run, for benchmarks


def run_load(
    pipeline: dlt.Pipeline,
    *,
    base_url: str | None = None,
    api_token: str | None = None,
    full_refresh: bool = False,
    source_options: dict[str, Any] | None = None,
    stats: RequestStats | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> LoadResult:
    """Bring local state in line with the warehouse, finish what an earlier run left pending, extract and
    load what can have changed, then check every purchase against the API's counters and re-read those
    that disagree.

    The first run, ``full_refresh``, and a warehouse that lacks loads the local state
    remembers read everything; later runs read the nightly plan against what the
    warehouse holds. base_url/api_token None means dlt's config. ``stats`` lets a
    caller watch requests while the run goes on; ``on_wait`` hears why the run waits
    for a locked DuckDB file.
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
    working = duckdb_file(pipeline)

    def locked(action: Callable[[], Any]) -> Any:
        return retry_when_locked(action, working, on_wait=on_wait)

    def repair(codes: list[str]) -> Any:
        source = certiverse_source(stats=stats, reread_purchases=codes, **options).with_resources("vouchers")
        return locked(lambda: pipeline.run(source, loader_file_format=file_format))

    phases: dict[str, float] = {}
    timed = partial(_timed, phases)
    with exclusive(pipeline):
        reason = timed("align", lambda: locked(
            lambda: align_with_warehouse(pipeline, lambda: pipeline.run(loader_file_format=file_format))))
        previous = None
        if not (full_refresh or reason):
            previous = timed("snapshot", lambda: locked(lambda: read_snapshot(pipeline)))
        source = certiverse_source(stats=stats, full_refresh=full_refresh or bool(reason), previous=previous,
                                   **options)
        info = timed("run", lambda: locked(lambda: pipeline.run(source, loader_file_format=file_format)))
        locked(lambda: create_declared_child_tables(pipeline))  # an empty tenant's (see child_tables.py)
        phases.update(_steps(pipeline))
        load_ids, extracted = list(info.loads_ids) if info else [], _extracted(pipeline)
        # A full read has just read every voucher afresh: what disagrees now is the API's own accounting.
        read_afresh = vouchers_state(pipeline).get("mode") == "full"
        check, disagreeing, repair_info = timed("counter_check", lambda: _check_counters(
            pipeline, locked, None if read_afresh else repair))
        if repair_info is not None:
            load_ids += repair_info.loads_ids
            for table, n in _extracted(pipeline).items():
                extracted[table] = extracted.get(table, 0) + n
        rows, written = timed("after_load", lambda: locked(
            lambda: _after_load(pipeline, check, disagreeing, load_ids)))
    return LoadResult(
        info=info,
        stats=stats,
        seconds=time.monotonic() - started,
        rows=rows,
        extracted=extracted,
        written=written,
        counter_check=check,
        full_read_reason=reason,
        phases=phases,
    )


def _timed(phases: dict[str, float], name: str, action: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    try:
        return action()
    finally:
        phases[name] = round(time.perf_counter() - started, 3)


def _steps(pipeline: dlt.Pipeline) -> dict[str, float]:
    """Seconds of the extract, normalize and load steps of the last pipeline.run."""
    trace = pipeline.last_trace
    steps = trace.steps if trace else []
    return {f"run.{s.step}": round((s.finished_at - s.started_at).total_seconds(), 3) for s in steps
            if s.step in ("extract", "normalize", "load") and s.finished_at}


def _check_counters(
    pipeline: dlt.Pipeline, locked: Callable[[Callable[[], Any]], Any], repair: Callable[[list[str]], Any] | None
) -> tuple[CounterCheck, dict[str, counters.Disagreement], Any]:
    """Compare every purchase with its vouchers in the warehouse; re-read (``repair``) those that disagree
    and are not known to disagree by the API's own accounting (``repair`` None: every voucher was just
    read afresh, nothing to re-read). Returns the check, the disagreements left after the re-read, and
    the re-read's load info (None if nothing was re-read)."""

    def on_warehouse(query: Callable[[Any], Any]) -> Any:
        def action() -> Any:
            with pipeline.sql_client() as client:
                return query(client)

        return locked(action)

    checked, found, reread = on_warehouse(counters.to_reread)
    check = CounterCheck(checked=checked)
    repair_info = None
    if reread and repair is not None:
        log.info("counter check: %d purchases disagree with their vouchers in the warehouse; re-reading them",
                 len(reread))
        repair_info = repair(reread)
        # What the re-read left: the disagreements alone (which of them were known does not matter now).
        _, found = on_warehouse(counters.disagreements)
        check.reread, check.repaired = reread, [code for code in reread if code not in found]
    check.api_accounting = sorted(found)
    return check, found, repair_info


def _after_load(pipeline: dlt.Pipeline, check: CounterCheck, disagreeing: dict[str, counters.Disagreement],
                load_ids: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Record the counter check; rows per table and rows written by these loads, through one connection."""
    with pipeline.sql_client() as client:
        counters.record(client, check, disagreeing)
        return table_counts(pipeline, client), rows_written(pipeline, client, load_ids)


def _extracted(pipeline: dlt.Pipeline) -> dict[str, int]:
    """Rows the last pipeline.run read, per data table."""
    trace = pipeline.last_trace
    if not trace or not trace.last_normalize_info:
        return {}
    return {t: n for t, n in trace.last_normalize_info.row_counts.items() if not t.startswith("_dlt")}


def table_counts(pipeline: dlt.Pipeline, client: Any) -> dict[str, int]:
    """Rows per data table of the pipeline's dataset (dlt's own tables left out), through an open client."""
    present = tables(client)
    counts: dict[str, int] = {}
    for name in sorted(pipeline.default_schema.data_table_names()):
        if not name.startswith("_dlt") and name in present:
            counts[name] = client.execute_sql(f"select count(*) from {client.make_qualified_table_name(name)}")[0][0]
    return counts


def rows_written(pipeline: dlt.Pipeline, client: Any, load_ids: list[str]) -> dict[str, int]:
    """Rows the given loads wrote to each root table: all read rows for merged tables, only new
    or changed versions for the vouchers history."""
    if not load_ids:
        return {}
    written: dict[str, int] = {}
    placeholders = ", ".join(["%s"] * len(load_ids))
    for name in RESOURCES:
        if name in pipeline.default_schema.tables:
            qualified = client.make_qualified_table_name(name)
            written[name] = client.execute_sql(
                f"select count(*) from {qualified} where _dlt_load_id in ({placeholders})", *load_ids
            )[0][0]
    return written
