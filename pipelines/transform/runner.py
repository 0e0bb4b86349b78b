"""Build the marts with the dbt project in ``transforms/``.

``run_transforms`` runs the dbt project in this process (dbt's programmatic
runner) on the run context's warehouse, with a profile derived from the same
configuration the load uses (``pipelines/transform/profile.py``): the models, then
their tests, as ``dbt build`` would.
Staging and intermediate models are views, marts are tables, all in the
warehouse's dataset. Readers never see a mix of two runs' marts, and a failed
build leaves the previous marts as they were (``pipelines/transform/swap.py`` says how,
per engine).

The **as-of date**: expiry and day counts are judged against it, so the same data and the
same as-of date give the same tables. It reaches dbt through the one-row table
``_certiverse_as_of`` of the dataset, written before dbt starts and dropped after (the
``as_of_date()`` macro reads it when a model is compiled), not as a dbt var: dbt re-parses the
whole project when a var changes, and the date changes every night; with only constant vars
(time zone, schema) a night's build reuses the last parse (dbt's partial parsing, kept in the
target folders under ``dbt_dir``). dbt by hand can still set the var ``as_of``.
The **reporting time zone** is dbt's var ``certiverse_timezone`` (the context's ``timezone``:
``[marts] timezone``, env ``MARTS__TIMEZONE``, default UTC): the marts' dates and months are
calendar dates there, and the default as-of date is the API's date there.

**dbt's artifacts**: every build leaves ``manifest.json`` and ``run_results.json`` (every
model and every test of the build, dbt's schema) in the build target's folder under the
context's ``dbt_dir``: ``<warehouse folder>/dbt/dataset/`` (DuckDB) or ``.../dbt/build/``
(Postgres), also when the build fails.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import zoneinfo
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from ...sources.certiverse import ConfigurationError
from ..context import DEFAULT_TIMEZONE, RunContext
from ..load.pipeline import resource_state
from ..load.warehouse import stored_state
from ..phases import Phases
from . import swap
from .profile import BUILD_TARGET, DATASET_TARGET, build_schema, temporary_profile

log = logging.getLogger(__name__)

# The dbt project ships inside the package (certiverse_warehouse.transforms): found where pip put it,
# and only read; dbt's own files (target/, logs/) go to the warehouse's folder (RunContext.dbt_dir).
TRANSFORMS_DIR = Path(str(resources.files("certiverse_warehouse.transforms")))
# raw tables the staging models read (transforms/models/staging/sources.yml)
RAW_TABLES = ("partners", "programs", "programs__store_exams", "purchases", "vouchers")
RUN_RESULTS = "run_results.json"
# the build's as-of date, read by the as_of_date() macro (transforms/macros/as_of_date.sql)
AS_OF_TABLE = "_certiverse_as_of"


class TransformError(RuntimeError):
    """The marts cannot be built; the message says why (the previous marts are left as they were)."""


@dataclass(frozen=True)
class NodeResult:
    """One model or test of a build, as dbt reported it."""

    name: str
    status: str  # dbt's: success, error, skipped (models); pass, warn, fail, error, skipped (tests)
    seconds: float


@dataclass
class TransformResult:
    """What one build did: its models and tests (in execution order), where dbt's artifacts are, its phases."""

    as_of: dt.date
    models: list[NodeResult]
    tests: list[NodeResult]
    artifacts: Path  # the folder holding this build's manifest.json and run_results.json
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def model_seconds(self) -> dict[str, float]:
        """Seconds per model, in build order."""
        return {m.name: m.seconds for m in self.models}

    def counts(self) -> dict[str, dict[str, int]]:
        """Models and tests run, passed, warned (tests), failed and skipped."""
        return {"models": _count(self.models, passed=("success",)), "tests": _count(self.tests, passed=("pass",))}

    def as_dict(self) -> dict[str, Any]:
        """The ``dbt`` object of ``--json``."""
        return {"as_of": self.as_of.isoformat(), **self.counts(),
                "model_seconds": {name: round(s, 3) for name, s in self.model_seconds.items()},
                "artifacts": str(self.artifacts)}


def _count(nodes: Sequence[NodeResult], passed: tuple[str, ...]) -> dict[str, int]:
    statuses = [n.status for n in nodes]
    counted = {"run": len(statuses), "passed": sum(s in passed for s in statuses),
               "failed": sum(s in ("error", "fail") for s in statuses), "skipped": statuses.count("skipped")}
    if "pass" in passed:
        counted["warned"] = statuses.count("warn")
    return counted


def reporting_timezone(name: str | None) -> str:
    """The reporting time zone ``name`` (the context's ``timezone``; None: UTC), checked: an IANA name
    (``America/New_York``); one Python's zoneinfo does not know raises ConfigurationError before dbt starts."""
    value = str(name or DEFAULT_TIMEZONE).strip()
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(
            f"[marts] timezone {value!r} is not a time zone name: use an IANA name such as UTC, "
            "Europe/Berlin or America/New_York (MARTS__TIMEZONE)"
        ) from exc
    return value


def api_date(client: Any, pipeline_name: str, timezone: str = DEFAULT_TIMEZONE) -> dt.date:
    """The API's date when the last load read the vouchers (its ``Date`` header, which the load keeps in
    the vouchers resource's state as ``read_at``, stored in the warehouse with the load), in the reporting
    ``timezone``: the marts then judge expiry as the load did, whatever this machine's clock says. Today
    there if no load has said."""
    read_at = resource_state(stored_state(client, pipeline_name) or {}).get("read_at")
    return date_in(dt.datetime.fromisoformat(read_at) if read_at else dt.datetime.now(dt.timezone.utc), timezone)


def date_in(instant: dt.datetime, timezone: str) -> dt.date:
    """The calendar date of ``instant`` in ``timezone`` (a naive instant is UTC)."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=dt.timezone.utc)
    return instant.astimezone(zoneinfo.ZoneInfo(timezone)).date()


def dbt_vars(context: RunContext, timezone: str) -> dict[str, str]:
    """The dbt vars of a run: the reporting time zone, where the raw tables are. Both are the same
    every night, so dbt's partial parse stays valid (the as-of date goes in ``AS_OF_TABLE``)."""
    return {"certiverse_timezone": timezone, "certiverse_schema": context.warehouse.dataset}


def run_transforms(
    context: RunContext,
    as_of: dt.date | None = None,
    select: str | None = None,
    project_dir: Path = TRANSFORMS_DIR,
) -> TransformResult:
    """Build the models, then test them, on the context's warehouse.

    ``as_of`` (default: the API's date at the last load, see :func:`api_date`) is the
    date expiry and day counts are judged against. ``select`` is dbt's node selection (``voucher_expiry+``,
    ``marts``, ...): only those models and their tests are built, the others stay as they are.
    Dates and months are cut in the context's reporting time zone (dbt var ``certiverse_timezone``).
    Raises TransformError when nothing is loaded yet, or a model or test fails; ConfigurationError,
    before the warehouse is opened, when the time zone is none.
    """
    timezone = reporting_timezone(context.timezone)
    phases = Phases()
    with phases.time("dbt_parse"), context.sql_client() as client:
        _check_sources(client)
        as_of = as_of or api_date(client, context.pipeline_name, timezone)
        _write_as_of(client, as_of)
    try:
        with temporary_profile(context.warehouse) as profiles_dir:
            dbt = Dbt(project_dir, profiles_dir, context.dbt_dir, dbt_vars(context, timezone))
            if context.warehouse.destination == "postgres":
                target, (models, tests) = BUILD_TARGET, _build_out_of_sight(context, dbt, select, phases)
            else:
                target, (models, tests) = DATASET_TARGET, _build_in_place(context, dbt, select, phases)
    finally:
        # dbt by hand without the var then judges against today, as it always did
        with context.sql_client() as client:
            client.execute_sql(f"drop table if exists {client.make_qualified_table_name(AS_OF_TABLE)}")
    return TransformResult(as_of, models, tests, dbt.target_path(target), phases.as_dict())


def _write_as_of(client: Any, as_of: dt.date) -> None:
    """The build's as-of date, where the ``as_of_date()`` macro reads it (one row)."""
    table = client.make_qualified_table_name(AS_OF_TABLE)
    with client.begin_transaction():
        client.execute_sql(f"create table if not exists {table} (as_of_date date)")
        client.execute_sql(f"delete from {table}")
        client.execute_sql(f"insert into {table} values (cast('{as_of.isoformat()}' as date))")


def _build_out_of_sight(context: RunContext, dbt: "Dbt", select: str | None,
                        phases: Phases) -> tuple[list[NodeResult], list[NodeResult]]:
    """Postgres: build in the build schema, then swap the models into the dataset in one transaction."""
    dataset = context.warehouse.dataset
    hidden = build_schema(dataset)
    with phases.time("dbt_parse"):
        manifest = dbt.parse(BUILD_TARGET)
        _drop_retired(context, dbt, manifest)
        options: list[str] = []
        if select:
            # models outside the selection are read where they are, in the dataset (dbt's defer)
            dbt.parse(DATASET_TARGET, target_path=dbt.state_dir)
            options = ["--select", select, "--defer", "--favor-state", "--state", str(dbt.state_dir)]
    with phases.time("swap"), context.sql_client() as client:
        swap.drop_build_schema(client, hidden)
    models, tests = dbt.build(manifest, BUILD_TARGET, options, phases)
    with phases.time("swap"), context.sql_client() as client:
        try:
            seconds = swap.swap_into_dataset(client, hidden, dataset, [m.name for m in models])
        except swap.SwapError as exc:
            raise TransformError(str(exc)) from exc
        swap.drop_build_schema(client, hidden)
    log.info("swapped %d models into %s in %.3f s", len(models), dataset, seconds)
    return models, tests


def _build_in_place(context: RunContext, dbt: "Dbt", select: str | None,
                    phases: Phases) -> tuple[list[NodeResult], list[NodeResult]]:
    """DuckDB: set the previous mart tables aside, build in the dataset, restore them if the build fails."""
    dataset = context.warehouse.dataset
    with phases.time("dbt_parse"):
        manifest = dbt.parse(DATASET_TARGET)
        _drop_retired(context, dbt, manifest)
        options = ["--select", select] if select else []
        tables = [name for name, kind in dbt.models(manifest, options).items() if kind == "table"]
    # the dlt client closes before dbt opens the file: one process, two configurations of one file
    with phases.time("swap"), context.sql_client() as client:
        swap.set_aside(client, dataset, tables)
    try:
        built = dbt.build(manifest, DATASET_TARGET, options, phases)
    except BaseException:
        with context.sql_client() as client:
            swap.restore(client, dataset, tables)
        raise
    with phases.time("swap"), context.sql_client() as client:
        swap.discard_previous(client, dataset, tables)
    return built


def _drop_retired(context: RunContext, dbt: "Dbt", manifest: Any) -> None:
    """Views left in the dataset by models the project no longer builds as relations."""
    built = [name for name, kind in dbt.models(manifest, []).items() if kind != "ephemeral"]
    with context.sql_client() as client:
        swap.drop_retired_views(client, context.warehouse.dataset, built,
                                together=context.warehouse.destination == "postgres")


def _check_sources(client: Any) -> None:
    """Fail with a clear message when raw tables are missing (nothing loaded yet)."""
    missing = sorted(set(RAW_TABLES) - swap.relations(client, client.dataset_name).keys())
    if missing:
        raise TransformError(
            f"raw tables {missing} are missing from dataset {client.dataset_name}: run a load first"
        )


# -- dbt -------------------------------------------------------------------------------------


class Dbt:
    """dbt's programmatic runner on one project and profile; its own files go in ``work_dir``.

    Each target keeps its own ``target/`` folder there, so dbt's partial parsing
    can reuse the last parse of the same target (valid while the project files, the vars, the
    profile's connection and dbt's version are the same: ``ManifestLoader.is_partial_parsable``).
    """

    def __init__(self, project_dir: Path, profiles_dir: Path, work_dir: Path, variables: dict[str, str]) -> None:
        self.project_dir = project_dir
        self.profiles_dir = profiles_dir
        self.work_dir = work_dir
        self.variables = variables
        self.state_dir = work_dir / DATASET_TARGET

    def parse(self, target: str, target_path: Path | None = None) -> Any:
        """The project's manifest for ``target``."""
        return self._invoke(self._args("parse", target, target_path)).result

    def models(self, manifest: Any, options: Sequence[str]) -> dict[str, str]:
        """Models that ``options`` (``--select ...``) pick (all without): name -> materialization."""
        nodes = {n.name: n for n in manifest.nodes.values() if n.resource_type == "model"}
        if not options:
            return {name: node.config.materialized for name, node in nodes.items()}
        names = self._invoke(["ls", "--resource-type", "model", "--output", "name", *options,
                              *self._args(None, DATASET_TARGET)], manifest).result
        return {name: nodes[name].config.materialized for name in names}

    def build(self, manifest: Any, target: str, options: Sequence[str],
              phases: Phases) -> tuple[list[NodeResult], list[NodeResult]]:
        """What ``dbt build`` does: the models, then their tests; returns the models' and the tests'
        results, in execution order, and leaves them in ``run_results.json`` (also when one fails).

        As ``dbt run`` then ``dbt test`` rather than ``dbt build``: build makes each model wait
        for its parents' tests, and on the large tenant those tests (a million rows each) then
        lay end to end between the marts. The new marts reach readers only when every test
        passed, either way. Each invocation's own ``run_results.json`` would hold only its half,
        the second overwriting the first, so neither writes one (``--no-write-json``) and the
        build's results are written once, together, with dbt's own artifact writer.
        """
        done: list[tuple[str, Any]] = []
        try:
            for command, phase in (("run", "dbt_models"), ("test", "dbt_tests")):
                with phases.time(phase):
                    result = self._invoke([*self._args(command, target), "--no-write-json", *options], manifest,
                                          check=False)
                done.append((command, result))
                if not result.success:
                    raise TransformError(_failure_message(command, result))
        finally:
            self._write_run_results(target, [result.result for _, result in done if result.result is not None])
        run, test = (_node_results(result.result) for _, result in done)
        return run, test

    def target_path(self, target: str) -> Path:
        """Where dbt writes ``target``'s files: partial parse, ``manifest.json``, ``run_results.json``."""
        return self.work_dir / target

    def _write_run_results(self, target: str, executions: list[Any]) -> None:
        """One ``run_results.json`` (dbt's schema) holding every model and test these invocations ran."""
        if not executions:
            return
        from dbt.artifacts.schemas.run import RunResultsArtifact

        artifact = RunResultsArtifact.from_execution_results(
            results=[r for execution in executions for r in execution.results],
            elapsed_time=sum(execution.elapsed_time for execution in executions),
            generated_at=executions[-1].generated_at,
            # what ran: `dbt build`'s models and tests, as `dbt run` then `dbt test` on one manifest
            args={**executions[-1].args, "which": "build"},
        )
        artifact.write(str(self.target_path(target) / RUN_RESULTS))

    def _args(self, command: str | None, target: str, target_path: Path | None = None) -> list[str]:
        return [
            *([command] if command else []),
            "--project-dir", str(self.project_dir),
            "--profiles-dir", str(self.profiles_dir),
            "--target", target,
            "--target-path", str(target_path or self.work_dir / target),
            "--log-path", str(self.work_dir / "logs"),
            "--vars", json.dumps(self.variables),
            # dbt prints to stdout by default; library code logs (events are forwarded below)
            "--log-level", "none",
            "--log-level-file", "info",
            "--no-use-colors",
            "--no-use-colors-file",
            "--no-send-anonymous-usage-stats",
            "--no-version-check",
        ]

    def _invoke(self, args: list[str], manifest: Any = None, check: bool = True) -> Any:
        """dbt's result of one invocation; ``check``: raise TransformError when it did not succeed."""
        from dbt.cli.main import dbtRunner  # importing dbt takes ~1.5 s: only when transforms run

        started = time.perf_counter()
        events = _DbtEvents()
        try:
            result = dbtRunner(manifest=manifest, callbacks=[events]).invoke(args)
        except Exception as exc:  # dbt raises some project errors (a ref cycle) instead of returning them
            events.forward(interrupted=False)
            raise TransformError(f"dbt {args[0]} failed: {exc}") from exc
        finally:
            release_duckdb()
        log.debug("dbt %s took %.2f s", args[0], time.perf_counter() - started)
        interrupted = isinstance(result.exception, KeyboardInterrupt)
        events.forward(interrupted)
        if interrupted:
            # dbt cancels its queries on Ctrl-C, then its runner returns the interruption as a
            # failed result; it stays an interruption here, not a failed build.
            raise result.exception
        if check and not result.success:
            raise TransformError(_failure_message(args[0], result))
        return result


def _node_results(execution: Any) -> list[NodeResult]:
    return [NodeResult(r.node.name, str(r.status), float(r.execution_time)) for r in execution.results]



class _DbtEvents:
    """dbt's events, to the log: its debug lines at once, its warnings and errors when the command is over.

    Those of an interrupted command (each cancelled query, "Encountered an error", its traceback) are
    the interruption's echo: they go to the debug log (``-v``), and the CLI says in one line what was
    interrupted.
    """

    def __init__(self) -> None:
        self._held: list[tuple[int, str]] = []

    def __call__(self, event: Any) -> None:
        level = {"warn": logging.WARNING, "error": logging.ERROR}.get(event.info.level, logging.DEBUG)
        if not event.info.msg:
            return
        if level > logging.DEBUG:
            self._held.append((level, event.info.msg))  # from dbt's threads too: list.append is atomic
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("dbt: %s", event.info.msg)

    def forward(self, interrupted: bool) -> None:
        for level, message in self._held:
            log.log(logging.DEBUG if interrupted else level, "dbt: %s", message)
        self._held.clear()


def _failure_message(command: str, result: Any) -> str:
    if result.exception is not None:
        return f"dbt {command} failed: {result.exception}"
    results = getattr(result.result, "results", None) or []
    failed = [r for r in results if str(r.status) in ("error", "fail", "runtime error")]
    skipped = sum(1 for r in results if str(r.status) == "skipped")
    lines = [f"{r.node.resource_type} {r.node.name} failed: {(r.message or '').strip()}" for r in failed]
    if skipped:
        lines.append(f"{skipped} models and tests that depend on them were skipped")
    return f"dbt {command} failed; the previous marts are unchanged:\n  " + "\n  ".join(lines or ["(no detail)"])


def release_duckdb() -> None:
    """Let go of the DuckDB file dbt opened.

    dbt-duckdb keeps its database handle in a class attribute between invocations
    (``keep_open: false`` in the profile closes the connection only when its last
    cursor does); DuckDB then refuses the dlt SQL client's own connection of the
    same process, which has another configuration, and keeps other processes out.
    """
    import sys

    module = sys.modules.get("dbt.adapters.duckdb.connections")
    if module is None:
        return
    manager = module.DuckDBConnectionManager
    with manager._LOCK:
        if manager._ENV is not None:
            manager._ENV.close()
        manager.close_all_connections()


__all__: list[str] = [
    "TRANSFORMS_DIR",
    "NodeResult",
    "TransformError",
    "TransformResult",
    "api_date",
    "date_in",
    "dbt_vars",
    "release_duckdb",
    "reporting_timezone",
    "run_transforms",
]
