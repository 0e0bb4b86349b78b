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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass
class CheckResult:
    """One check: its name, whether it passed, a sentence, the exit code of its failure (0 if none), figures."""

    name: str
    ok: bool
    detail: str
    exit_code: int = 0
    figures: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "exit_code": self.exit_code,
                "seconds": round(self.seconds, 3), **self.figures}


def run_check(name: str, action: Callable[[], tuple[str, dict[str, Any]]],
              classify: Callable[[BaseException], tuple[int, str]]) -> CheckResult:
    """Run one check: ``action`` returns (sentence, figures) or raises; ``classify`` turns what it raised into
    the exit code and line a run would give."""
    started = time.monotonic()
    try:
        detail, figures = action()
    except Exception as exc:  # each check reports its own failure; the others still run
        code, message = classify(exc)
        log.debug("check %s failed", name, exc_info=True)
        return CheckResult(name, False, message, code, seconds=time.monotonic() - started)
    return CheckResult(name, True, detail, 0, figures, seconds=time.monotonic() - started)


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


def check_api(config: Any) -> tuple[str, dict[str, Any]]:
    """One request: the first page of the programs list, with the run's timeout and retries."""
    from ..sources.certiverse import CertiverseClient, Query

    started = time.monotonic()
    with CertiverseClient(config.base_url, config.api_token, timeout=config.timeout,
                          max_attempts=config.max_attempts, backoff_base=config.retry_backoff) as client:
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


def probe_writable(sql_client: Any) -> None:
    """In a transaction rolled back at the end: the dataset created if missing, a table created in it.

    Fails as a load would: the login, the database, the right to create in it, the DuckDB file and its lock.
    """
    with sql_client as client:
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
