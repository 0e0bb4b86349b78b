"""The published copy: what analysts and BI tools open, apart from the loader's working file.

The working warehouse (dlt's DuckDB file) belongs to the loader: DuckDB allows
one writer or many readers, so a reader on it would stop the nightly run, and a
run would lock readers out. After every successful run the loader therefore
writes, from the working file:

* a DuckDB file (default ``<warehouse>_published.duckdb`` beside the warehouse)
  in a storage version older clients open (default ``v1.4.0``: BI tools bundle
  DuckDB 1.x), with every relation in its ``main`` schema, and
* the same relations as Parquet files in a folder (default ``<warehouse>_parquet/``)
  for tools that read files,

each built beside its target and swapped in atomically, both together (``atomic``): a
run stopped while publishing leaves the previous copy as it was, and nothing beside it. The relations:
every mart (the dataset's tables that dlt did not load), the current state of
every resource (child tables included; ``vouchers`` holds current versions only, in the
DuckDB copy as a view over the history),
``voucher_history`` (every version of every voucher, dlt's scd2 table), and
``publication`` (one row: when, from which load, in which storage version).

Configured the dlt way, ``[publish]`` in ``.dlt/config.toml`` or ``PUBLISH__*``:
``enabled`` (true), ``duckdb_file``, ``parquet_dir``, ``parquet`` (true),
``storage_version`` ("v1.4.0"), ``memory_limit`` (DuckDB's while it writes the copy, "256MB"); the run
context reads them (``pipelines/context.py``, ``Targets``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..context import RunContext, Targets
from .atomic import (
    PublishError,
    remove_leftovers,
    replace_dir_link,
    replace_file,
    scratch_path,
    signals_held,
    version_dir,
)

log = logging.getLogger(__name__)

HISTORY = "voucher_history"
CURRENT = "_dlt_valid_to is null"  # dlt's scd2: the current version of a voucher
INFO = "publication"
_INTERNAL = re.compile(r"^_")  # dlt's _dlt_* tables and the loader's own _certiverse_* bookkeeping


@dataclass
class Publication:
    """What one publish wrote."""

    duckdb_file: Path | None
    parquet_dir: Path | None
    storage_version: str
    published_at: dt.datetime
    load_id: str | None
    relations: dict[str, int] = field(default_factory=dict)  # name -> rows
    seconds: float = 0.0
    bytes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "duckdb_file": str(self.duckdb_file) if self.duckdb_file else None,
            "parquet_dir": str(self.parquet_dir) if self.parquet_dir else None,
            "storage_version": self.storage_version,
            "published_at": self.published_at.isoformat(),
            "load_id": self.load_id,
            "relations": self.relations,
            "seconds": round(self.seconds, 3),
            "bytes": self.bytes,
        }


def publish(context: RunContext, targets: Targets | None = None) -> Publication | None:
    """Write the published copy of the context's DuckDB warehouse to ``targets`` (default: the context's);
    None if there is nothing to publish to."""
    targets = targets or context.publish
    if targets is None:
        log.info("publishing: the destination is %s; readers read it directly", context.warehouse.destination)
        return None
    if targets.duckdb_file is None and targets.parquet_dir is None:
        return None
    started = time.monotonic()
    for target in (targets.duckdb_file, targets.parquet_dir):
        if target is not None:
            for path in remove_leftovers(target):
                log.info("removed %s, left by a publish that did not finish", path)
    with context.sql_client() as client:
        relations = _relations(client)
        load_id = _last_load_id(client)
        publication = Publication(targets.duckdb_file, targets.parquet_dir, targets.storage_version,
                                  dt.datetime.now(dt.timezone.utc), load_id)
        _write(client.native_connection, relations, targets, publication)
    if targets.duckdb_file is not None:
        publication.bytes += targets.duckdb_file.stat().st_size
    if targets.parquet_dir is not None:
        publication.bytes += sum(p.stat().st_size for p in targets.parquet_dir.resolve().iterdir())
    publication.seconds = time.monotonic() - started
    log.info("published %d relations in %.1f s (%s bytes)", len(publication.relations), publication.seconds,
             f"{publication.bytes:,}")
    return publication


@contextlib.contextmanager
def _settings(connection: Any, **settings: str) -> Iterator[None]:
    """DuckDB settings for the copy, put back afterwards (the connection is the loader's).

    Measured on the large tenant (1M vouchers, 2 cores): with the loader's 128MB and insertion
    order kept, the copy took 18 s; rows in no particular order (a table has none) and 256MB
    (the process stays below the load's own peak) brought it to ~7 s.
    """
    before = {name: connection.execute(f"select current_setting('{name}')").fetchone()[0] for name in settings}
    try:
        for name, value in settings.items():
            connection.execute(f"set {name} = '{value}'")
        yield
    finally:
        for name, value in before.items():
            connection.execute(f"set {name} = '{value}'")


def _relations(client: Any) -> dict[str, str]:
    """Published name -> the SELECT that fills it."""
    rows = client.execute_sql(
        "select table_name from information_schema.tables where table_schema = %s and table_type = 'BASE TABLE'",
        client.dataset_name,
    )
    out: dict[str, str] = {}
    for (name,) in sorted(rows):
        if _INTERNAL.match(name):
            continue
        qualified = client.make_qualified_table_name(name)
        if name == "vouchers":
            # History first: the DuckDB copy's `vouchers` is a view over it (see _write_duckdb).
            out[HISTORY] = f"select * from {qualified}"
            out["vouchers"] = f"select * from {qualified} where {CURRENT}"
        elif name == HISTORY:
            raise PublishError(f"a table named {HISTORY} in the dataset would hide the voucher history: rename it")
        else:
            out[name] = f"select * from {qualified}"
    if "vouchers" not in out:
        raise PublishError("nothing to publish: the warehouse holds no vouchers yet (run a load first)")
    return out


def _last_load_id(client: Any) -> str | None:
    rows = client.execute_sql(
        f"select max(load_id) from {client.make_qualified_table_name('_dlt_loads')} where status = 0")
    return rows[0][0] if rows else None


def _write(connection: Any, relations: dict[str, str], targets: Targets, publication: Publication) -> None:
    """Build every target beside its place, then put them all in place together; on any failure or
    interruption, remove what was built and leave the published copy as it was."""
    duckdb_built = parquet_built = None
    try:
        with _settings(connection, memory_limit=targets.memory_limit, preserve_insertion_order="false"):
            if targets.duckdb_file is not None:
                publication.relations, duckdb_built = _write_duckdb(connection, relations, targets, publication)
            if targets.parquet_dir is not None:
                publication.relations, parquet_built = _write_parquet(connection, relations, targets.parquet_dir,
                                                                      publication)
        with signals_held():
            if duckdb_built is not None:
                replace_file(duckdb_built, targets.duckdb_file)
            if parquet_built is not None:
                replace_dir_link(parquet_built, targets.parquet_dir)
    except BaseException:
        if duckdb_built is not None:
            _remove(duckdb_built)
        if parquet_built is not None and targets.parquet_dir.resolve() != parquet_built.resolve():
            _remove(parquet_built)
        raise


def _write_duckdb(connection: Any, relations: dict[str, str], targets: Targets, publication: Publication
                  ) -> tuple[dict[str, int], Path]:
    """The DuckDB copy, built beside its target: (rows per relation, the built file)."""
    target = targets.duckdb_file
    assert target is not None
    built = scratch_path(target)
    _remove(built)
    _remove(Path(f"{built}.wal"))
    connection.execute(f"attach '{_literal(built)}' as published (storage_version '{targets.storage_version}')")
    counts: dict[str, int] = {}
    try:
        # One transaction: committed once, the tables are written together (one commit each took
        # three times as long on the default tenant).
        connection.execute("begin")
        for name, select in relations.items():
            if name == "vouchers":
                # The current versions, as a view over the history: a million-row copy less to write
                # (2 s and 90 MB on the large tenant). Unqualified, the view reads its own file's table.
                connection.execute(f"create view published.main.vouchers as select * from {HISTORY} where {CURRENT}")
            else:
                connection.execute(f'create table published.main."{name}" as {select}')
            counts[name] = connection.execute(f'select count(*) from published.main."{name}"').fetchone()[0]
        connection.execute(
            f"create table published.main.{INFO} as select cast(? as timestamptz) as published_at, "
            "cast(? as varchar) as load_id, cast(? as varchar) as storage_version, cast(? as varchar) as relations",
            [publication.published_at, publication.load_id, targets.storage_version, ",".join(counts)],
        )
        connection.execute("commit")
    except BaseException:
        with contextlib.suppress(Exception):  # the original error matters, not a rollback with nothing to undo
            connection.execute("rollback")
        _remove_after_detach(connection, built)
        raise
    connection.execute("detach published")
    if Path(f"{built}.wal").exists():
        _remove(built)
        _remove(Path(f"{built}.wal"))
        raise PublishError(f"DuckDB left a write-ahead log beside {built}; not publishing a file that needs it")
    return counts, built


def _remove_after_detach(connection: Any, built: Path) -> None:
    """Detach the half-built copy and remove it with its write-ahead log."""
    with contextlib.suppress(Exception):
        connection.execute("detach published")
    _remove(built)
    _remove(Path(f"{built}.wal"))


def _write_parquet(connection: Any, relations: dict[str, str], target: Path, publication: Publication
                   ) -> tuple[dict[str, int], Path]:
    """The Parquet folder, built as a new version beside the link: (rows per relation, the version folder)."""
    version = publication.published_at.strftime("%Y%m%dT%H%M%S%fZ")
    built = version_dir(target, version)
    scratch = scratch_path(built)
    _remove(scratch)
    scratch.mkdir(parents=True)
    try:
        counts = _fill_parquet(connection, relations, scratch, publication)
        os.rename(scratch, built)
    except BaseException:
        _remove(scratch)
        raise
    return counts, built


def _fill_parquet(connection: Any, relations: dict[str, str], scratch: Path, publication: Publication
                  ) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, select in relations.items():
        path = scratch / f"{name}.parquet"
        # zstd at level 1: as small as the default level 3 here, and ~10% faster to write.
        connection.execute(f"copy ({select}) to '{_literal(path)}' (format parquet, compression zstd, "
                           "compression_level 1)")
        counts[name] = connection.execute(f"select count(*) from read_parquet('{_literal(path)}')").fetchone()[0]
    info = scratch / f"{INFO}.parquet"
    connection.execute(
        f"copy (select cast(? as timestamptz) as published_at, cast(? as varchar) as load_id, "
        f"cast(? as varchar) as relations) to '{_literal(info)}' (format parquet)",
        [publication.published_at, publication.load_id, ",".join(counts)],
    )
    return counts


def _literal(path: Path) -> str:
    return str(path).replace("'", "''")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def published_info(targets: Targets) -> dict[str, Any] | None:
    """What the published copy at these targets says of itself (``publication``), or None if there is none."""
    import duckdb

    out: dict[str, Any] = {
        "duckdb_file": str(targets.duckdb_file) if targets.duckdb_file else None,
        "parquet_dir": str(targets.parquet_dir) if targets.parquet_dir else None,
        "published_at": None,
        "load_id": None,
        "storage_version": targets.storage_version,
    }
    if targets.duckdb_file is None or not targets.duckdb_file.exists():
        return out if targets.duckdb_file else None
    with duckdb.connect(str(targets.duckdb_file), read_only=True) as connection:
        row = connection.execute(f"select published_at, load_id, storage_version from {INFO}").fetchone()
    published_at, load_id, version = row
    out.update(published_at=published_at.astimezone(dt.timezone.utc).isoformat(), load_id=load_id,
               storage_version=version)
    return out
