"""`certiverse check`: is everything a run needs in place? Configuration, the API, the warehouse, loading nothing.

Three checks, each on its own so that one failure does not hide another:

* **configuration**: the source's settings resolved the way a run resolves them (dlt's
  injection of ``[sources.certiverse]``: base URL, token, numbers of the right type), the
  base URL and the token checked as the client checks them, the destination's settings,
  and ``[notifications]``;
* **API**: one cheap request, the first page of the programs list, with the run's
  timeout and retries: the token is accepted and the server is the API;
* **warehouse**: opened for writing as a run opens it, waiting out a lock as a run
  does, and in a transaction that is rolled back, a table created and dropped in the
  dataset (Postgres: the login, the database and the right to create; DuckDB: the
  file and its folder). A DuckDB file that does not exist yet is not created: a
  scratch file beside it proves the folder takes one, and is deleted.

A failed check carries the exit code ``run`` would end with (``pipelines/cli/failures.py``).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .context import RunContext

log = logging.getLogger(__name__)


OK, FAILED, SKIPPED = "ok", "failed", "skipped"
Classify = Callable[[BaseException], "tuple[int, str]"]


@dataclass
class CheckResult:
    """One check: its name, ``ok``/``failed``/``skipped``, a sentence, the exit code of its failure (0 if none),
    figures, warnings that do not fail it."""

    name: str
    status: str
    detail: str
    exit_code: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "exit_code": self.exit_code,
                "seconds": round(self.seconds, 3), "warnings": self.warnings, **self.figures}


def run_checks(make_context: Callable[[], RunContext], base_url: str | None, classify: Classify) -> list[CheckResult]:
    """Configuration, then the API and the warehouse (each skipped if its configuration failed)."""
    started = time.monotonic()
    source, source_error = _attempt(lambda: source_configuration(base_url))
    context, context_error = _attempt(make_context)
    results = [_configuration(source, source_error, context, context_error, classify, time.monotonic() - started)]
    if source is None:
        results.append(CheckResult("api", SKIPPED, "not tried: the API's configuration failed"))
    else:
        results.append(run_check("api", lambda: check_api(source), classify))
    if context is None:
        results.append(CheckResult("warehouse", SKIPPED, "not tried: the warehouse's configuration failed"))
    else:
        results.append(run_check("warehouse", lambda: check_warehouse(context), classify))
    return results


def exit_code(results: list[CheckResult]) -> int:
    """The code of the first failed check (configuration, API, warehouse), else 0."""
    return next((r.exit_code for r in results if r.status == FAILED), 0)


def run_check(name: str, action: Callable[[], tuple[str, dict[str, Any]]], classify: Classify) -> CheckResult:
    """Run one check: ``action`` returns (sentence, figures) or raises; ``classify`` turns what it raised into
    the exit code and line a run would give."""
    started = time.monotonic()
    try:
        detail, figures = action()
    except Exception as exc:  # each check reports its own failure; the others still run
        code, message = classify(exc)
        log.debug("check %s failed", name, exc_info=True)
        return CheckResult(name, FAILED, message, code, seconds=time.monotonic() - started)
    return CheckResult(name, OK, detail, 0, figures, seconds=time.monotonic() - started)


def _attempt(action: Callable[[], Any]) -> tuple[Any, Exception | None]:
    try:
        return action(), None
    except Exception as exc:  # reported by the configuration check
        return None, exc


def _configuration(source: Any, source_error: Exception | None, context: RunContext | None,
                   context_error: Exception | None, classify: Classify, seconds: float) -> CheckResult:
    failures = [classify(error) for error in (source_error, context_error) if error is not None]
    warnings = _notification_warnings()
    if failures:
        return CheckResult("configuration", FAILED, "; ".join(message for _, message in failures), failures[0][0],
                           seconds=seconds, warnings=warnings)
    assert source is not None and context is not None
    webhook = context.notifications
    published = context.publish.duckdb_file if context.publish else None
    parts = [
        f"API {source.base_url} with a token set, {source.workers} workers, {source.timeout:g} s a request, "
        f"requests retried for up to {source.retry_budget:g} s",
        f"warehouse {context.warehouse.name}" + (f" (dataset {context.warehouse.dataset})"
                                                  if context.warehouse.duckdb_file else ""),
        f"local state in {context.state_dir}",
        f"waits up to {context.locks.timeout:g} s for a locked DuckDB file",
        f"published copy {published}" if published else "no published copy",
        f"notifications to {webhook.where}" if webhook.url else "no notifications ([notifications] webhook_url)",
    ]
    figures = {"base_url": source.base_url, "warehouse": context.warehouse.name,
               "state_dir": str(context.state_dir), "published": str(published) if published else None,
               "notifications": webhook.where if webhook.url else None}
    return CheckResult("configuration", OK, "; ".join(parts), 0, figures, seconds, warnings)


def _notification_warnings() -> list[str]:
    """A broken ``[notifications]`` turns notifications off without failing a run: said, not failed."""
    from .notifications import notifications_configuration

    try:
        notifications_configuration()
    except Exception as exc:  # dlt's configuration errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [f"notifications are off: [notifications] cannot be read: {first}"]
    return []


def source_configuration(base_url: str | None = None) -> Any:
    """The source's configuration resolved exactly as a run resolves it (dlt's spec of ``certiverse_source``);
    ``base_url`` overrides, as ``--base-url`` does. Raises dlt's configuration errors, and the client's
    for a base URL or token that cannot be right."""
    from dlt.common.configuration import resolve_configuration

    from ..sources.certiverse import certiverse_source
    from ..sources.certiverse.client import check_base_url, check_token

    reference = certiverse_source.ref
    config = resolve_configuration(reference.SPEC(), sections=("sources", reference.section, reference.name),
                                   explicit_value={"base_url": base_url} if base_url else None)
    check_base_url(config.base_url)
    check_token(config.api_token)
    return config


CHECK_RETRY_BUDGET = 30.0  # seconds


def check_api(config: Any) -> tuple[str, dict[str, Any]]:
    """One request: the first page of the programs list, with the run's timeout, retried for at most
    ``CHECK_RETRY_BUDGET`` seconds."""
    from ..sources.certiverse import CertiverseClient, Query

    started = time.monotonic()
    # A check answers while someone waits for it: an API down for longer than this is reported, not
    # waited out as a night's run waits (retry_budget, ten minutes by default).
    budget = min(config.retry_budget, CHECK_RETRY_BUDGET)
    with CertiverseClient(config.base_url, config.api_token, timeout=config.timeout,
                          retry_budget=budget, backoff_base=config.retry_backoff) as client:
        records, next_link = client.page(Query("programs"))
        clock = client.api_time()
    seconds = time.monotonic() - started
    more = " and more pages" if next_link else ""
    detail = (f"{config.base_url} accepted the token: GET /api/vouchers/programs answered {len(records)} "
              f"program(s) on its first page{more} in {seconds:.2f} s"
              + (f"; the API's clock says {clock.isoformat(timespec='seconds')}" if clock else ""))
    return detail, {"base_url": config.base_url, "programs_on_first_page": len(records),
                    "api_time": clock.isoformat() if clock else None}


class _RolledBack(Exception):
    """Raised inside the probe's transaction so that dlt's transaction rolls it back on both engines."""


def probe_writable(open_client: Callable[[], Any]) -> None:
    """In a transaction rolled back at the end: the dataset created if missing, a table created in it.

    Fails as a load would: the login, the database, the right to create in it, the DuckDB file and its lock.
    """
    with open_client() as client:
        try:
            with client.begin_transaction():
                client.execute_sql(f"create schema if not exists {client.fully_qualified_dataset_name()}")
                client.execute_sql(f"create table {client.make_qualified_table_name('_certiverse_check')} "
                                   "(checked_at integer)")
                raise _RolledBack
        except _RolledBack:
            pass


def probe_new_duckdb_file(path: Path) -> None:
    """A DuckDB file that does not exist yet: prove its folder takes one with a scratch file beside it, deleted
    at once (creating the warehouse itself would leave an empty file behind, or race a starting run)."""
    import duckdb

    scratch = path.with_name(f".{path.name}.check-{os.getpid()}")
    try:
        with duckdb.connect(str(scratch)) as connection:
            connection.execute("create table certiverse_check (checked_at integer)")
    except duckdb.Error as exc:
        # say it of the warehouse's file, as a run would
        raise type(exc)(str(exc).replace(str(scratch), str(path))) from None
    finally:
        for leftover in (scratch, scratch.with_name(scratch.name + ".wal")):
            leftover.unlink(missing_ok=True)


def check_warehouse(context: RunContext) -> tuple[str, dict[str, Any]]:
    """Open the warehouse for writing as a run would, loading nothing (see the module docstring)."""
    # the run writes its local state here: a folder it cannot write fails the run too
    context.state_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=context.state_dir):
        pass
    path = context.warehouse.duckdb_file
    figures: dict[str, Any] = {"warehouse": context.warehouse.name, "state_dir": str(context.state_dir)}
    if path is not None:
        # DuckDB writes a log beside its file: the folder must take new files even when the file exists
        probe_new_duckdb_file(path)
        figures.update(exists=path.exists(), bytes=path.stat().st_size if path.exists() else None)
        if not path.exists():
            return (f"{path} does not exist yet; its folder {path.parent} takes a new DuckDB file (tried with a "
                    "scratch file, deleted): the first run creates it", figures)
    context.on_warehouse(probe_writable, context.sql_client)
    return (f"{context.warehouse.name} opened for writing: dataset {context.warehouse.dataset} created if missing "
            "and a table created in it, in a transaction rolled back", figures)
