"""The Dagster code location: the raw tables, every dbt model and the published copy as assets, with
the dbt tests, the counter check and freshness as asset checks, and a daily schedule.

Found through ``[tool.dagster] module_name`` in pyproject.toml (``dagster dev``,
``dagster asset materialize --select '*' -m certiverse_warehouse.orchestration.dagster_definitions``).

- **Raw tables** (group ``raw``): one multi-asset, one asset per table dlt writes (each resource and its
  child tables), produced by the project's own load (``steps.load``: the run lock, the nightly plan, the
  counter check), never by a second loader. Their keys are the dbt sources' (``certiverse/<table>``),
  so the models' lineage starts at them.
- **dbt models** (groups ``staging``, ``intermediate``, ``marts``): dagster-dbt describes them from the
  project's manifest, and the project's runner builds them (``steps.transform``). dagster-dbt's own way,
  ``dbt build`` from a ``DbtCliResource``, would build model after model straight into the dataset:
  readers would see a mix of two nights' marts while it runs, a failed test would leave the new marts in
  place, and on Postgres nothing would be built out of sight. The runner keeps all three promises; this
  asset turns its results (dbt's ``run_results.json``) into the events dagster-dbt would have sent:
  a materialization per model, a check result per test.
- **Published copy** (group ``published``): downstream of the marts, written by ``steps.publish_copy``.
- **Checks**: every dbt test (on its model; a singular test that reads several models names its model in
  its ``meta.dagster.ref``); ``counter_check`` on the vouchers (every purchase agrees with its vouchers,
  or disagrees only where a fresh read confirmed the API's own accounting); ``fresh`` on the vouchers
  (the last successful load is not older than ``max_age_hours``, as ``certiverse status`` judges it).

Configuration is dlt's (``.dlt/config.toml``, ``.dlt/secrets.toml``, ``SOURCES__CERTIVERSE__*``): the
token has no second place here. The resource :class:`CertiverseWarehouse` names only what the command
line would (destination, DuckDB file, pipelines folder) and the freshness limit. A failure ends the step
with the command's one-line message and exit code; only API and warehouse failures are retried.
"""

# No `from __future__ import annotations`: Dagster reads the resource and config classes from the
# functions' annotations at run time.
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, dbt_assets

from . import steps
from .dbt_manifest import manifest_path
from .failures import describe, worth_retrying

SOURCE = "certiverse"  # the dbt source's name: raw tables are certiverse/<table>, as dagster-dbt keys sources
VOUCHERS = dg.AssetKey([SOURCE, "vouchers"])
PUBLISHED = dg.AssetKey([SOURCE, "published_copy"])
# API and warehouse failures only (failures.py): a retry a minute later, then five minutes later
RETRY = dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL)
NIGHTLY_CRON = "15 3 * * *"  # as the cron and systemd recipes: 03:15 UTC
FRESHNESS_CRON = "0 9 * * *"  # the health check of the cron recipe


class CertiverseWarehouse(dg.ConfigurableResource):
    """Which warehouse the assets load and build; everything else (the API, its token, the DuckDB file
    when not named here, publishing) comes from dlt's configuration."""

    destination: str = "duckdb"
    duckdb_file: str | None = None
    pipelines_dir: str | None = None
    max_age_hours: float = 36.0

    def warehouse(self) -> steps.Warehouse:
        return steps.Warehouse(self.destination, self.duckdb_file, self.pipelines_dir)


class LoadConfig(dg.Config):
    full_refresh: bool = False  # re-read everything instead of the nightly plan (`certiverse load --full-refresh`)


@contextmanager
def project_failures() -> Iterator[None]:
    """A failure ends the step with the command's one-line message and exit code; retried only when worth it."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        code, message = describe(exc)
        raise dg.Failure(description=message, metadata={"exit_code": code},
                         allow_retries=worth_retrying(code)) from exc


# -- raw tables ---------------------------------------------------------------------------------------


@dg.multi_asset(
    name="certiverse_load",
    specs=[dg.AssetSpec(dg.AssetKey([SOURCE, table]), group_name="raw", kinds={"dlt"},
                        description=description)
           for table, description in steps.RAW_TABLES.items()],
    check_specs=[dg.AssetCheckSpec(
        "counter_check", asset=VOUCHERS,
        description="Every purchase agrees with its current vouchers (used, unused, and for Complete "
                    "purchases all of them), or disagrees only where a fresh read confirmed the API's "
                    "own accounting.")],
    retry_policy=RETRY,
)
def certiverse_load(context: dg.AssetExecutionContext, config: LoadConfig,
                    certiverse: CertiverseWarehouse) -> Iterator[Any]:
    """`certiverse load`: the first run reads everything, later runs the nightly plan."""
    warehouse = certiverse.warehouse()
    with project_failures():
        result = steps.load(warehouse, context.log.info, full_refresh=config.full_refresh)
        verdict = steps.counter_verdict(warehouse, context.log.info)
    run = steps.load_figures(result)
    for table in steps.RAW_TABLES:
        metadata: dict[str, Any] = {"rows": result.rows.get(table, 0), "read": result.extracted.get(table, 0)}
        if table in result.written:
            metadata["new_or_changed"] = result.written[table]
        if table == "vouchers":
            metadata.update(run)
        yield dg.MaterializeResult(asset_key=dg.AssetKey([SOURCE, table]), metadata=metadata)
    yield dg.AssetCheckResult(
        asset_key=VOUCHERS, check_name="counter_check", passed=verdict.passed,
        metadata={"purchases_checked": verdict.checked, "api_accounting": verdict.api_accounting,
                  "unexplained": len(verdict.unexplained),
                  **({"unexplained_purchases": dg.MetadataValue.json(verdict.unexplained[:50])}
                     if verdict.unexplained else {}),
                  **run.get("counter_check", {})},
    )


# -- dbt models and tests -----------------------------------------------------------------------------


class CertiverseDbtTranslator(DagsterDbtTranslator):
    """dagster-dbt's keys (sources ``certiverse/<table>``, models by name), grouped by the project's layers."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return "raw"
        fqn = dbt_resource_props.get("fqn") or []
        return fqn[1] if len(fqn) > 2 else super().get_group_name(dbt_resource_props)


TRANSLATOR = CertiverseDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def build_definitions(resource: CertiverseWarehouse | None = None) -> dg.Definitions:
    """The definitions for one warehouse (default: dlt's configuration, as ``certiverse`` without options)."""
    resource = resource or CertiverseWarehouse()
    manifest = manifest_path(resource.warehouse().context())
    marts = _dbt_assets(manifest)
    published = _published_copy(_mart_keys(manifest))
    nightly = dg.define_asset_job("certiverse_nightly", selection=dg.AssetSelection.all(),
                                  description="Load, build and test the marts, publish the copy readers open.")
    freshness = dg.define_asset_job("certiverse_freshness", selection=dg.AssetSelection.checks(fresh),
                                    description="Is the last successful load older than max_age_hours?")
    return dg.Definitions(
        assets=[certiverse_load, marts, published],
        asset_checks=[fresh],
        jobs=[nightly, freshness],
        schedules=[
            dg.ScheduleDefinition(job=nightly, cron_schedule=NIGHTLY_CRON, execution_timezone="UTC"),
            dg.ScheduleDefinition(job=freshness, cron_schedule=FRESHNESS_CRON, execution_timezone="UTC"),
        ],
        resources={"certiverse": resource},
        # The steps run one after another in one process: they share one DuckDB file, which takes one
        # writer at a time, and the chain load -> dbt -> publish has nothing to run side by side. (Dagster's
        # default starts a process per step, each importing dlt, dbt and Dagster again: ~5 s of CPU each.)
        executor=dg.in_process_executor,
    )


def _models(manifest: Path) -> dict[str, Any]:
    nodes = json.loads(manifest.read_text())["nodes"]
    return {uid: node for uid, node in nodes.items() if node["resource_type"] == "model"}


def _model_names_by_key(manifest: Path) -> dict[dg.AssetKey, str]:
    return {TRANSLATOR.get_asset_key(node): node["name"] for node in _models(manifest).values()}


def _mart_keys(manifest: Path) -> list[dg.AssetKey]:
    """The marts (models in models/marts/): what the published copy is made of, beside the raw tables."""
    return sorted((TRANSLATOR.get_asset_key(node) for node in _models(manifest).values()
                   if node["fqn"][1:2] == ["marts"]), key=lambda k: k.to_string())


def _dbt_assets(manifest: Path) -> dg.AssetsDefinition:
    models = _model_names_by_key(manifest)
    described = json.loads(manifest.read_text())

    @dbt_assets(manifest=manifest, dagster_dbt_translator=TRANSLATOR, name="certiverse_dbt", retry_policy=RETRY)
    def certiverse_dbt(context: dg.AssetExecutionContext, certiverse: CertiverseWarehouse) -> Iterator[Any]:
        """`certiverse transform` without the publish: the project's runner builds the models, then tests them."""
        selected = context.selected_asset_keys
        select = None if selected == set(models) else " ".join(sorted(models[k] for k in selected))
        with project_failures():
            built = steps.transform(certiverse.warehouse(), context.log.info, select=select)
        context.log.info(f"dbt: {built.counts()} (as of {built.as_of}); artifacts in {built.artifacts}")
        yield from dbt_events(built.artifacts / "run_results.json", described, context.selected_asset_check_keys)

    return certiverse_dbt


def dbt_events(run_results: Path, manifest: Mapping[str, Any],
               selected_checks: Any) -> Iterator[dg.Output | dg.AssetCheckResult]:
    """dbt's ``run_results.json`` as the events dagster-dbt sends for a build: an output (materialization)
    per model, a check result per test (a test that warns is a failed check of severity WARN, as there)."""
    from dagster_dbt.asset_utils import get_asset_check_key_for_test

    for result in json.loads(run_results.read_text())["results"]:
        unique_id, status = result["unique_id"], result["status"]
        if unique_id.startswith("model."):
            key = TRANSLATOR.get_asset_key(manifest["nodes"][unique_id])
            yield dg.Output(None, output_name=key.to_python_identifier(),
                            metadata={"status": status, "seconds": round(result["execution_time"], 3)})
        elif unique_id.startswith("test."):
            check = get_asset_check_key_for_test(manifest, TRANSLATOR, unique_id, project=None)
            if check is None or check not in selected_checks:
                continue
            yield dg.AssetCheckResult(
                asset_key=check.asset_key, check_name=check.name, passed=status == "pass",
                severity=dg.AssetCheckSeverity.WARN if status == "warn" else dg.AssetCheckSeverity.ERROR,
                metadata={"status": status, "failures": result.get("failures") or 0})


# -- published copy and freshness ---------------------------------------------------------------------


def _published_copy(marts: list[dg.AssetKey]) -> dg.AssetsDefinition:
    @dg.asset(key=PUBLISHED, deps=marts, group_name="published", kinds={"duckdb", "parquet"}, retry_policy=RETRY)
    def published_copy(context: dg.AssetExecutionContext, certiverse: CertiverseWarehouse) -> dg.MaterializeResult:
        """`certiverse publish`: the DuckDB file (storage v1.4) and Parquet folder analysts and BI tools open."""
        with project_failures():
            publication = steps.publish_copy(certiverse.warehouse(), context.log.info)
        if publication is None:
            return dg.MaterializeResult(metadata={"published": "nothing: not DuckDB, or [publish] enabled = false"})
        return dg.MaterializeResult(metadata={
            "duckdb_file": str(publication.duckdb_file or "-"), "parquet_dir": str(publication.parquet_dir or "-"),
            "relations": len(publication.relations), "MB": round(publication.bytes / 1e6, 1),
            "seconds": round(publication.seconds, 2)})

    return published_copy


@dg.asset_check(asset=VOUCHERS, name="fresh",
                description="The last successful load is not older than the resource's max_age_hours "
                            "(`certiverse status --max-age-hours`).")
def fresh(context: dg.AssetCheckExecutionContext, certiverse: CertiverseWarehouse) -> dg.AssetCheckResult:
    with project_failures():
        status = steps.freshness(certiverse.warehouse(), certiverse.max_age_hours, context.log.info)
    return dg.AssetCheckResult(passed=not status["stale"], metadata={
        "last_success_at": str(status["last_success_at"]), "age_hours": status["age_hours"] or -1.0,
        "max_age_hours": status["freshness_limit_hours"]})


defs = build_definitions()
