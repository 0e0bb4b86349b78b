"""Run the SQL models in ``transforms/`` on the pipeline's destination, and read headlines from them.

Models are plain SQL files, one per table or view, with three template expressions:

- ``{{ source("vouchers") }}``: a raw table loaded by dlt (staging models only),
- ``{{ ref("stg_vouchers") }}``: another model, which is then built first,
- ``{{ as_of }}``: the reference date, as a date literal both engines read.

Each model becomes a relation of the same name in the pipeline's dataset:
staging and intermediate models are views (cheap projections of the raw tables,
computed inside whatever reads them), marts are tables (``create table ... as``).
Writing a million-row staging copy only for the marts to read it once cost more
than half of a run. Every run drops the models' relations (dependents first)
and creates them again; the whole run is one transaction, so readers see either
the previous run's marts or this run's, never a mix, and a failing model changes
nothing.
"""

from __future__ import annotations

import datetime as dt
import graphlib
import logging
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager

import dlt

log = logging.getLogger(__name__)

TRANSFORMS_DIR = Path(__file__).resolve().parent.parent / "transforms"
STAGING = "staging"
# layers built as views; every other layer (marts) is built as tables
VIEW_LAYERS = frozenset({STAGING, "intermediate"})
_EXPRESSION = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.DOTALL)
_CALL = re.compile(r"""^(source|ref)\(\s*["']([a-z_][a-z0-9_]*)["']\s*\)$""")


class TransformError(RuntimeError):
    """A model cannot be read, ordered or built."""


@dataclass(frozen=True)
class Model:
    """One SQL file: the table it builds, its layer, and what it reads."""

    name: str
    layer: str
    path: Path
    sql: str
    refs: frozenset[str]
    sources: frozenset[str]

    @property
    def kind(self) -> str:
        """``view`` or ``table``: what the model is built as, by its layer."""
        return "view" if self.layer in VIEW_LAYERS else "table"


def load_models(directory: Path = TRANSFORMS_DIR) -> dict[str, Model]:
    """Every ``<layer>/<name>.sql`` under ``directory``, checked against the layering rules."""
    models: dict[str, Model] = {}
    for path in sorted(directory.glob("*/*.sql")):
        name, layer = path.stem, path.parent.name
        if name in models:
            raise TransformError(f"two models named {name}: {models[name].path} and {path}")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise TransformError(f"{path}: model names are lowercase identifiers")
        sql = path.read_text()
        refs, sources = set(), set()
        for expression in _EXPRESSION.findall(sql):
            call = _CALL.match(expression)
            if call:
                (refs if call.group(1) == "ref" else sources).add(call.group(2))
            elif expression != "as_of":
                raise TransformError(f"{path}: unknown template expression {{{{ {expression} }}}}")
        if sources and layer != STAGING:
            raise TransformError(f"{path}: only staging models read raw tables (source)")
        if name.startswith("_dlt"):
            raise TransformError(f"{path}: names starting with _dlt belong to dlt")
        models[name] = Model(name, layer, path, sql, frozenset(refs), frozenset(sources))
    raw = {s for m in models.values() for s in m.sources}
    for model in models.values():
        if model.name in raw:
            raise TransformError(f"{model.path}: a model may not take the name of the raw table {model.name}")
        missing = model.refs - models.keys()
        if missing:
            raise TransformError(f"{model.path}: ref to unknown model(s) {sorted(missing)}")
    return models


def build_order(models: dict[str, Model]) -> list[str]:
    """Model names so that every model comes after the models it refs (ties by name)."""
    sorter = graphlib.TopologicalSorter({name: sorted(m.refs) for name, m in sorted(models.items())})
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise TransformError(f"models ref each other in a cycle: {exc.args[1]}") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return order


def date_literal(day: dt.date) -> str:
    """A date literal DuckDB and Postgres both read."""
    return f"cast('{day.isoformat()}' as date)"


def render(model: Model, qualify: Callable[[str], str], as_of: dt.date) -> str:
    """The model's SQL with its template expressions replaced."""

    def replace(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression == "as_of":
            return date_literal(as_of)
        call = _CALL.match(expression)
        assert call, expression  # load_models has checked every expression
        return qualify(call.group(2))

    return _EXPRESSION.sub(replace, model.sql)


def today_utc() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def run_transforms(
    pipeline: dlt.Pipeline,
    as_of: dt.date | None = None,
    directory: Path = TRANSFORMS_DIR,
) -> dict[str, float]:
    """Build every model on the pipeline's destination; returns seconds per model, in build order.

    A model's seconds include dropping its previous relation. Views cost next to
    nothing here; their work is done by the tables that read them.

    ``as_of`` (default: today, UTC) is the date expiry and day counts are judged
    against, so the same data and the same ``as_of`` give the same tables.
    """
    as_of = as_of or today_utc()
    models = load_models(directory)
    order = build_order(models)
    timings: dict[str, float] = {}
    with pipeline.sql_client() as client:
        qualify = client.make_qualified_table_name
        with client.begin_transaction():
            existing = _relations(client)
            _check_sources(client, models, existing)
            # dependents first: Postgres refuses to drop a view another view reads
            for name in reversed(order):
                started = time.perf_counter()
                if name in existing:
                    kind = "view" if existing[name] == "VIEW" else "table"
                    _execute(client, models[name], f"drop {kind} {qualify(name)}")
                timings[name] = time.perf_counter() - started
            for name in order:
                started = time.perf_counter()
                model = models[name]
                sql = render(model, qualify, as_of).strip().rstrip(";")
                _execute(client, model, f"create {model.kind} {qualify(name)} as\n{sql}")
                timings[name] += time.perf_counter() - started
                log.info("built %s (%s) in %.2f s", name, model.kind, timings[name])
    return {name: timings[name] for name in order}


def _execute(client: Any, model: Model, statement: str) -> None:
    try:
        client.execute_sql(statement)
    except Exception as exc:
        raise TransformError(f"model {model.name} ({model.path}) failed: {exc}") from exc


def _relations(client: Any) -> dict[str, str]:
    """Tables and views in the dataset: name -> ``BASE TABLE`` or ``VIEW``."""
    rows = client.execute_sql(
        "select table_name, table_type from information_schema.tables where table_schema = %s",
        client.dataset_name,
    )
    return {name: kind for name, kind in rows or ()}


def _check_sources(client: Any, models: dict[str, Model], existing: dict[str, str]) -> None:
    """Fail with a clear message when raw tables are missing (nothing loaded yet)."""
    needed = {s for m in models.values() for s in m.sources}
    missing = needed - existing.keys()
    if missing:
        raise TransformError(
            f"raw tables {sorted(missing)} are missing from dataset {client.dataset_name}: run a load first"
        )


# -- headlines -------------------------------------------------------------------------------


def _open(pipeline_or_client: Any) -> ContextManager[Any]:
    """A pipeline's SQL client to open, or an already open client to use as it is."""
    if isinstance(pipeline_or_client, dlt.Pipeline):
        return pipeline_or_client.sql_client()
    return nullcontext(pipeline_or_client)


def headlines(pipeline_or_client: Any, as_of: dt.date | None = None) -> list[str]:
    """Two or three readable lines from the marts: utilization, money, what expires soon.

    ``pipeline_or_client`` is a dlt pipeline or an open dlt SQL client. Windows
    ("within 30 days") count from ``as_of``, default the date the marts were built for.
    """
    with _open(pipeline_or_client) as client:
        q = client.make_qualified_table_name
        totals = client.execute_sql(
            f"""
            select
                max(as_of_date),
                count(*),
                count(*) filter (where voucher_status = 'used'),
                count(*) filter (where voucher_status in ('assigned_unused', 'reserved', 'unassigned')),
                count(*) filter (where voucher_status = 'expired_unused'),
                count(*) filter (where voucher_status = 'deactivated')
            from {q('voucher_status')}
            """
        )[0]
        money = client.execute_sql(
            f"""
            select
                count(*),
                sum(amount_paid),
                sum(value_used),
                sum(value_redeemable),
                sum(value_expired_unused)
            from {q('voucher_utilization')}
            """
        )[0]
        built_for, vouchers, used, redeemable, expired, deactivated = totals
        start = as_of or built_for or today_utc()
        soon = client.execute_sql(
            f"""
            select
                count(*) filter (where expires_on <= {date_literal(start + dt.timedelta(days=30))}),
                sum(value_at_risk) filter (where expires_on <= {date_literal(start + dt.timedelta(days=30))}),
                count(*),
                sum(value_at_risk),
                count(*) filter (where is_assigned)
            from {q('voucher_expiry')}
            where expires_on >= {date_literal(start)}
                and expires_on <= {date_literal(start + dt.timedelta(days=90))}
            """
        )[0]
    purchases, paid, value_used, value_redeemable, breakage = (money[0], *(float(v or 0) for v in money[1:]))
    soon_30, value_30, soon_90, value_90, assigned_90 = soon
    share = 100 * used / vouchers if vouchers else 0.0
    assigned_share = 100 * assigned_90 / soon_90 if soon_90 else 0.0
    return [
        f"As of {built_for}: {vouchers:,} vouchers on {purchases:,} purchases; {used:,} used ({share:.1f}%), "
        f"{redeemable:,} still redeemable, {expired:,} expired unused, {deactivated:,} deactivated.",
        f"Money: {paid:,.2f} paid; value used {value_used:,.2f}, still redeemable {value_redeemable:,.2f}, "
        f"lost to expiry (breakage) {breakage:,.2f}.",
        f"Expiring from {start}: {soon_30:,} unused vouchers worth {float(value_30 or 0):,.2f} within 30 days, "
        f"{soon_90:,} worth {float(value_90 or 0):,.2f} within 90 days ({assigned_share:.0f}% of those assigned).",
    ]


def format_timings(timings: dict[str, float]) -> str:
    """The per-model build times, for the CLI."""
    width = max((len(name) for name in timings), default=10)
    lines = [f"Built {len(timings)} models in {sum(timings.values()):.2f}s:"]
    lines += [f"  {name:<{width}}  {seconds:>7.2f}s" for name, seconds in timings.items()]
    return "\n".join(lines)


__all__: list[str] = [
    "TRANSFORMS_DIR",
    "Model",
    "TransformError",
    "build_order",
    "format_timings",
    "headlines",
    "load_models",
    "render",
    "run_transforms",
]
