"""The steps of a nightly run as an orchestrator calls them in-process: the load, the marts, the published
copy, and the two checks an orchestrator shows beside them (the counter check, freshness).

Each step does what the ``certiverse`` command of the same name does, through the same functions: the
load holds the run lock, finishes what an earlier run left pending, reads the nightly plan and checks
every purchase against the API's counters (``run_load``); the marts are built by the project's own dbt
runner (models, then tests, swapped in so that readers never see a mix); every step that opens the
DuckDB file waits out another program holding it. Configuration is dlt's (``.dlt/``, environment
variables): a :class:`Warehouse` names only what the command line would (destination, DuckDB file,
pipelines folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

# The project's modules are imported where a step runs: an orchestrator loads these definitions in
# processes that never run a step (a webserver, a scheduler), and dlt, dbt and pandas take seconds.
if TYPE_CHECKING:
    from ..pipelines.context import RunContext
    from ..pipelines.load import LoadResult
    from ..pipelines.publishing import Publication
    from ..pipelines.transform import TransformResult

Say = Callable[[str], None]

# What dlt writes: each resource and the child tables of its lists (names as in the warehouse).
RAW_TABLES = {
    "partners": "Partners, one row each (merged on id).",
    "partners__users": "The users of each partner (child table of partners).",
    "programs": "Voucher programs, one row each (merged on id).",
    "programs__discounts": "Discounts of each program (child table of programs).",
    "programs__partners__assigned_partners": "Partners a program is assigned to (child table of programs).",
    "programs__store_exams": "Exams sold under each program (child table of programs).",
    "purchases": "Voucher purchases in any status, one row each (merged on id).",
    "vouchers": "Every version of every voucher (scd2): current rows have _dlt_valid_to null.",
}


@dataclass(frozen=True)
class Warehouse:
    """Which warehouse, as the command line names it; everything else comes from dlt's configuration."""

    destination: str = "duckdb"
    duckdb_file: str | None = None  # None: [destination.duckdb] credentials, else warehouse.duckdb
    pipelines_dir: str | None = None  # None: dlt's (DLT_DATA_DIR, else ~/.dlt)

    def context(self, say: Say | None = None, *, read_only: bool = False) -> "RunContext":
        """The run context a command with these options builds (``say`` hears what a step waits for)."""
        from ..pipelines.context import RunContext

        return RunContext.from_config(self.destination, self.duckdb_file if self.destination == "duckdb" else None,
                                      pipelines_dir=self.pipelines_dir, on_wait=say, read_only=read_only)


def load(warehouse: Warehouse, say: Say | None = None, *, full_refresh: bool = False) -> "LoadResult":
    """``certiverse load``: the first run reads everything, later runs the nightly plan."""
    from ..pipelines.load import run_load

    return run_load(warehouse.context(say), full_refresh=full_refresh)


def load_figures(result: "LoadResult") -> dict[str, Any]:
    """A load's headline figures as plain values: seconds, read mode, requests, why everything was read."""
    return {
        "seconds": round(result.seconds, 2),
        "mode": result.vouchers_state.get("mode") or "-",
        "requests": result.requests.total(),
        "full_read_reason": result.full_read_reason or "-",
        "counter_check": result.counter_check.as_dict() if result.counter_check else {},
    }


def transform(warehouse: Warehouse, say: Say | None = None, *, select: str | None = None) -> "TransformResult":
    """``certiverse transform`` without the publish (its own step): build and test the marts. Its result
    names the folder of dbt's artifacts of this build (``manifest.json``, ``run_results.json``)."""
    from ..pipelines.transform import run_transforms

    context = warehouse.context(say)
    return context.on_warehouse(run_transforms, context, None, select=select)


def publish_copy(warehouse: Warehouse, say: Say | None = None) -> "Publication | None":
    """``certiverse publish``: the copy readers open; None where nothing is published (Postgres, disabled)."""
    from ..pipelines.publishing import publish

    context = warehouse.context(say)
    return context.on_warehouse(publish, context)


@dataclass(frozen=True)
class CounterVerdict:
    """Whether every purchase agrees with its vouchers in the warehouse, or disagrees only where a fresh read
    confirmed the API's own accounting (``pipelines/load/counters.py``)."""

    checked: int
    api_accounting: int
    unexplained: list[str]

    @property
    def passed(self) -> bool:
        return not self.unexplained


def counter_verdict(warehouse: Warehouse, say: Say | None = None) -> CounterVerdict:
    """The counter check's verdict on the warehouse as it is now (after a load: what the load left)."""
    from ..pipelines.load import counters

    context = warehouse.context(say)

    def query() -> tuple[int, dict[str, Any], list[str]]:
        with context.sql_client() as client:
            return counters.to_reread(client)

    checked, found, unexplained = context.on_warehouse(query)
    return CounterVerdict(checked, len(found) - len(unexplained), unexplained)


def freshness(warehouse: Warehouse, max_age_hours: float, say: Say | None = None) -> dict[str, Any]:
    """``certiverse status``: the last successful load, its age and whether it is older than ``max_age_hours``."""
    from ..pipelines.reporting.status import pipeline_status

    context = warehouse.context(say, read_only=True)
    return context.on_warehouse(pipeline_status, context, max_age_hours)
