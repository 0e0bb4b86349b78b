"""One load: local state in line with the warehouse, the extract and load, the counter check, the figures."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from dlt.common.pipeline import LoadInfo

from ...sources.certiverse import RequestStats, RunInputs, certiverse_source, requests_of

from ..context import RunContext
from ..locks import exclusive
from ..phases import Phases
from . import counters
from .counters import CounterCheck
from .pipeline import FILE_FORMATS, RESOURCES, vouchers_state
from .snapshot import read_snapshot
from .warehouse import align_with_warehouse, tables

log = logging.getLogger(__name__)


@dataclass
class LoadResult:
    """What one load did: requests sent, rows, the counter check, and where its time went."""

    requests: RequestStats  # by endpoint and outcome, re-reads included, as the source reported them
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase (pipelines/phases.py)
    load_ids: list[str] = field(default_factory=list)
    vouchers_state: dict[str, Any] = field(default_factory=dict)  # the vouchers resource's state after the load
    rows: dict[str, int] = field(default_factory=dict)
    extracted: dict[str, int] = field(default_factory=dict)  # rows this run read, per table
    written: dict[str, int] = field(default_factory=dict)  # rows this run added (new or changed), root tables
    counter_check: CounterCheck | None = None
    full_read_reason: str | None = None  # why everything was read though the warehouse had data
    info: LoadInfo | None = None  # dlt's load info of the read (None: nothing new was loaded)

    @property
    def mode(self) -> str:
        """How the vouchers were read: ``full read``, ``nightly read, rolling re-check night N``, or ''."""
        if self.vouchers_state.get("mode") == "nightly":
            return f"nightly read, rolling re-check night {self.vouchers_state.get('night')}"
        return "full read" if self.vouchers_state.get("mode") else ""


def run_load(
    context: RunContext,
    source_config: Mapping[str, Any] | None = None,
    *,
    full_refresh: bool = False,
    as_of: dt.datetime | None = None,
) -> LoadResult:
    """Bring local state in line with the warehouse, finish what an earlier run left pending, extract and
    load what can have changed, then check every purchase against the API's counters and re-read those
    that disagree.

    ``source_config``: the source's configuration given here (``base_url``, ``api_token``, ``workers``,
    ``record_cap``, ...); the rest comes from dlt's (``[sources.certiverse]``). The first run,
    ``full_refresh``, and a warehouse that lacks loads the local state remembers read everything;
    later runs read the nightly plan against what the warehouse holds. ``as_of`` is "now" for the
    plan (default: the API's clock).
    """
    started = time.perf_counter()
    pipeline, config, phases = context.pipeline, dict(source_config or {}), Phases()
    with exclusive(context.lock_file, f"a load of {context.warehouse.name}"):
        with phases.time("align"):
            reason = context.on_warehouse(align_with_warehouse, pipeline)
        snapshot = None
        if not (full_refresh or reason):
            with phases.time("snapshot"):
                snapshot = context.on_warehouse(read_snapshot, pipeline)
        inputs = RunInputs(snapshot=snapshot, as_of=as_of, full_refresh=full_refresh or bool(reason))
        read = _read_and_load(context, config, inputs, phases)
        # A full read has just read every voucher afresh: what disagrees now is the API's own accounting.
        read_afresh = vouchers_state(pipeline).get("mode") == "full"
        with phases.time("counter_check"):
            check, disagreeing, repair = _check_counters(context, config, repair=not read_afresh)
        reads = [read] if repair is None else [read, repair]
        load_ids = [load_id for r in reads if r.info for load_id in r.info.loads_ids]
        with phases.time("row_counts"):
            rows, written = context.on_warehouse(_after_load, context, check, disagreeing, load_ids)
    return LoadResult(
        requests=requests_of(*(r.extract for r in reads)),
        seconds=time.perf_counter() - started,
        phases=phases.as_dict(),
        load_ids=load_ids,
        vouchers_state=vouchers_state(pipeline),
        rows=rows,
        extracted=_sum_counts(r.row_counts for r in reads),
        written=written,
        counter_check=check,
        full_read_reason=reason,
        info=read.info,
    )


@dataclass
class _Read:
    """One extract, normalize and load of the source: dlt's info of each step."""

    extract: Any
    row_counts: dict[str, int]
    info: LoadInfo | None


def _read_and_load(context: RunContext, config: dict[str, Any], inputs: RunInputs,
                   phases: Phases | None = None) -> _Read:
    """Extract the source with these inputs, normalize, and load, as dlt's ``run()`` does after its sync
    (``align_with_warehouse`` did that); timed as ``read``, ``normalize`` and ``load`` into ``phases``.

    Steps apart, not ``run()``: only the load opens the warehouse, so only it waits out a locked
    DuckDB file, and a retried load never loses what the extract reported (a ``run()`` tried again
    after its load failed only loads the pending package).
    """
    pipeline, phases = context.pipeline, phases or Phases()
    with phases.time("read"):
        source = certiverse_source(**config)
        if inputs.reread_purchases:
            source = source.with_resources("vouchers")
        source.vouchers.bind(inputs)
        extract = pipeline.extract(source, loader_file_format=FILE_FORMATS[context.warehouse.destination])
    with phases.time("normalize"):
        normalized = pipeline.normalize()
    with phases.time("load"):
        info = context.on_warehouse(pipeline.load)
    row_counts = {t: n for t, n in (normalized.row_counts if normalized else {}).items() if not t.startswith("_dlt")}
    return _Read(extract, row_counts, info)


def _check_counters(
    context: RunContext, config: dict[str, Any], *, repair: bool
) -> tuple[CounterCheck, dict[str, counters.Disagreement], _Read | None]:
    """Compare every purchase with its vouchers in the warehouse; re-read (``repair``) those that disagree
    and are not known to disagree by the API's own accounting (no ``repair``: every voucher was just
    read afresh, nothing to re-read). Returns the check, the disagreements left after the re-read, and
    the re-read (None if nothing was re-read)."""
    checked, found, reread = context.on_warehouse(_query, context, counters.to_reread)
    check = CounterCheck(checked=checked)
    repaired = None
    if reread and repair:
        log.info("counter check: %d purchases disagree with their vouchers in the warehouse; re-reading them",
                 len(reread))
        repaired = _read_and_load(context, config, RunInputs.repair(reread))
        # What the re-read left: the disagreements alone (which of them were known does not matter now).
        _, found = context.on_warehouse(_query, context, counters.disagreements)
        check.reread, check.repaired = reread, [code for code in reread if code not in found]
    check.api_accounting = sorted(found)
    return check, found, repaired


def _query(context: RunContext, query: Any) -> Any:
    """``query(client)`` on one connection to the warehouse."""
    with context.sql_client() as client:
        return query(client)


def _after_load(context: RunContext, check: CounterCheck, disagreeing: dict[str, counters.Disagreement],
                load_ids: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Record the counter check; rows per table and rows written by these loads, through one connection."""
    with context.sql_client() as client:
        counters.record(client, check, disagreeing)
        return table_counts(context.pipeline, client), rows_written(context.pipeline, client, load_ids)


def _sum_counts(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for each in counts:
        for table, n in each.items():
            total[table] = total.get(table, 0) + n
    return total


def table_counts(pipeline: Any, client: Any) -> dict[str, int]:
    """Rows per data table of the pipeline's dataset (dlt's own tables left out), through an open client."""
    present = tables(client)
    result: dict[str, int] = {}
    for name in sorted(pipeline.default_schema.data_table_names()):
        if not name.startswith("_dlt") and name in present:
            result[name] = client.execute_sql(f"select count(*) from {client.make_qualified_table_name(name)}")[0][0]
    return result


def rows_written(pipeline: Any, client: Any, load_ids: list[str]) -> dict[str, int]:
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
