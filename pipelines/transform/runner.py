"""Build the marts with the dbt project in ``transforms/``, and read headlines from them.

``run_transforms`` runs the dbt project in this process (dbt's programmatic
runner) on the pipeline's destination, with a profile derived from the
pipeline's own dlt configuration (``pipelines/transform/profile.py``): the models, then
their tests, as ``dbt build`` would.
Staging and intermediate models are views, marts are tables, all in the
pipeline's dataset. Readers never see a mix of two runs' marts, and a failed
build leaves the previous marts as they were (``pipelines/swap.py`` says how,
per engine).

The **as-of date** is dbt's var ``as_of``: expiry and day counts are judged
against it, so the same data and the same as-of date give the same tables.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import dlt

from ..load import vouchers_state
from . import swap
from .profile import BUILD_TARGET, DATASET_TARGET, build_schema, engine, temporary_profile

log = logging.getLogger(__name__)

# The dbt project ships inside the package (certiverse_warehouse.transforms): found where pip put it,
# and only read; dbt's own files (target/, logs/) go to the pipeline's folder (dbt_work_dir).
TRANSFORMS_DIR = Path(str(resources.files("certiverse_warehouse.transforms")))
# raw tables the staging models read (transforms/models/staging/sources.yml)
RAW_TABLES = ("partners", "programs", "programs__store_exams", "purchases", "vouchers")


class TransformError(RuntimeError):
    """The marts cannot be built; the message says why (the previous marts are left as they were)."""


def today_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def api_date(pipeline: dlt.Pipeline) -> dt.date:
    """The API's date when the last load read the vouchers (its ``Date`` header, kept in the resource
    state as ``read_at``): the marts then judge expiry as the load did, whatever this machine's clock
    says. Today (UTC) if no load has said."""
    read_at = vouchers_state(pipeline).get("read_at")
    return dt.datetime.fromisoformat(read_at).date() if read_at else today_utc()


def run_transforms(
    pipeline: dlt.Pipeline,
    as_of: dt.date | None = None,
    select: str | None = None,
    project_dir: Path = TRANSFORMS_DIR,
) -> dict[str, float]:
    """Build the models, then test them, on the pipeline's destination; returns seconds per
    model, in build order.

    ``as_of`` (default: the API's date at the last load, see :func:`api_date`) is the
    date expiry and day counts are judged against. ``select`` is dbt's node selection (``voucher_expiry+``, ``marts``,
    ...): only those models and their tests are built, the others stay as they are.
    Raises TransformError when nothing is loaded yet, or a model or test fails.
    """
    as_of = as_of or api_date(pipeline)
    with pipeline.sql_client() as client:
        _check_sources(client)
    work_dir = dbt_work_dir(pipeline)
    with temporary_profile(pipeline) as profiles_dir:
        dbt = Dbt(project_dir, profiles_dir, work_dir, {"as_of": as_of.isoformat(),
                                                        "certiverse_schema": pipeline.dataset_name})
        if engine(pipeline) == "postgres":
            return _build_out_of_sight(pipeline, dbt, select)
        return _build_in_place(pipeline, dbt, select)


def dbt_work_dir(pipeline: dlt.Pipeline) -> Path:
    """dbt's own files for this pipeline (target/, partial parse, logs/): beside dlt's folder of the
    pipeline, like its lock file, since dlt may reset its own folder."""
    return Path(pipeline.pipelines_dir) / f"{pipeline.pipeline_name}.dbt"


def _build_out_of_sight(pipeline: dlt.Pipeline, dbt: "Dbt", select: str | None) -> dict[str, float]:
    """Postgres: build in the build schema, then swap the models into the dataset in one transaction."""
    dataset, hidden = pipeline.dataset_name, build_schema(pipeline.dataset_name)
    manifest = dbt.parse(BUILD_TARGET)
    options: list[str] = []
    if select:
        # models outside the selection are read where they are, in the dataset (dbt's defer)
        dbt.parse(DATASET_TARGET, target_path=dbt.state_dir)
        options = ["--select", select, "--defer", "--favor-state", "--state", str(dbt.state_dir)]
    with pipeline.sql_client() as client:
        swap.drop_build_schema(client, hidden)
    results = dbt.build(manifest, BUILD_TARGET, options)
    timings = _model_timings(results)
    with pipeline.sql_client() as client:
        try:
            seconds = swap.swap_into_dataset(client, hidden, dataset, list(timings))
        except swap.SwapError as exc:
            raise TransformError(str(exc)) from exc
        swap.drop_build_schema(client, hidden)
    log.info("swapped %d models into %s in %.3f s", len(timings), dataset, seconds)
    return timings


def _build_in_place(pipeline: dlt.Pipeline, dbt: "Dbt", select: str | None) -> dict[str, float]:
    """DuckDB: set the previous mart tables aside, build in the dataset, restore them if the build fails."""
    dataset = pipeline.dataset_name
    manifest = dbt.parse(DATASET_TARGET)
    options = ["--select", select] if select else []
    tables = [name for name, kind in dbt.models(manifest, options).items() if kind == "table"]
    # the dlt client closes before dbt opens the file: one process, two configurations of one file
    with pipeline.sql_client() as client:
        swap.set_aside(client, dataset, tables)
    try:
        results = dbt.build(manifest, DATASET_TARGET, options)
    except BaseException:
        with pipeline.sql_client() as client:
            swap.restore(client, dataset, tables)
        raise
    with pipeline.sql_client() as client:
        swap.discard_previous(client, dataset, tables)
    return _model_timings(results)


def _model_timings(results: Sequence[Any]) -> dict[str, float]:
    return {r.node.name: float(r.execution_time) for r in results if r.node.resource_type == "model"}


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
    can reuse the last parse of the same target (with the same vars).
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

    def build(self, manifest: Any, target: str, options: Sequence[str]) -> list[Any]:
        """What ``dbt build`` does: the models, then their tests; returns the results (models,
        then tests, in execution order).

        As ``dbt run`` then ``dbt test`` rather than ``dbt build``: build makes each model wait
        for its parents' tests, and on the large tenant those tests (a million rows each) then
        lay end to end between the marts. The new marts reach readers only when every test
        passed, either way. The results come back in memory; writing manifest.json and
        run_results.json again cost ~0.3 s a run.
        """
        results: list[Any] = []
        for command in ("run", "test"):
            args = [*self._args(command, target), "--no-write-json", *options]
            results += self._invoke(args, manifest).result.results
        return results

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

    def _invoke(self, args: list[str], manifest: Any = None) -> Any:
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
        if not result.success:
            raise TransformError(_failure_message(args[0], result))
        return result


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
    "TransformError",
    "dbt_work_dir",
    "release_duckdb",
    "run_transforms",
    "today_utc",
]
