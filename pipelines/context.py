"""One command's run context: which warehouse, where its local state lives, how to wait for a lock, where
the published copy goes. Built once where a command starts (:meth:`RunContext.from_config`) and handed to
load, transform, publish, status and report; no value of it travels any other way.

**Each warehouse has its own local state.** dlt keeps a pipeline's state, schemas and pending packages in
a local folder, and a copy of the state in the warehouse with every load. One folder shared by several
warehouses lends one warehouse's state to the next (dlt then warns about dropping it, and ``status`` of a
file never loaded reported another's reads). So the pipelines folder (``--pipelines-dir``, default dlt's
``~/.dlt/pipelines``) holds one folder per warehouse, named for it
(``duckdb-<file stem>-<hash of its path>``, ``postgres-<database>-<dataset>-<hash of host, port, database,
dataset>``), and inside it the pipeline keeps its name, ``certiverse``: a warehouse loaded by an earlier
version, whose state rows in ``_dlt_pipeline_state`` carry that name, is restored from them on the first
run with a new folder (``pipelines/load/warehouse.py``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import dlt

from .locks import DEFAULT_LOCK_TIMEOUT, LockPolicy, retry_when_locked
from .notifications import Webhook, configured_secrets

PIPELINE_NAME = "certiverse"
DATASET_NAME = "certiverse"
DESTINATIONS = ("duckdb", "postgres")
# dlt's own default, <pipeline>.duckdb, is certiverse.duckdb: DuckDB then cannot tell the
# file's catalog from the dataset `certiverse` ("Ambiguous reference to catalog or schema").
DEFAULT_DUCKDB_FILE = "warehouse.duckdb"
# DuckDB may take 80% of RAM for a merge; past this limit it spills to disk instead,
# so the run's memory does not grow with the tenant.
DUCKDB_MEMORY_LIMIT = "128MB"
PUBLISH_STORAGE_VERSION = "v1.4.0"  # BI tools bundle DuckDB 1.x (pipelines/publishing/publish.py)
PUBLISH_MEMORY_LIMIT = "256MB"  # DuckDB's memory while it writes the copy (see publish._settings)
# the reporting time zone the marts cut dates and months in, unless [marts] timezone says another
DEFAULT_TIMEZONE = "UTC"


@dataclass(frozen=True)
class Warehouse:
    """Where the data goes: a DuckDB file, or a Postgres database, and the dataset in it.

    ``postgres`` is dlt's resolved ``PostgresCredentials`` (password included: never print it;
    :attr:`name` leaves it out).
    """

    destination: str
    dataset: str = DATASET_NAME
    duckdb_file: Path | None = None
    memory_limit: str = DUCKDB_MEMORY_LIMIT
    postgres: Any = None
    read_only: bool = False

    @classmethod
    def from_config(cls, destination: str = "duckdb", credentials: Any = None, *, dataset: str = DATASET_NAME,
                    read_only: bool = False) -> "Warehouse":
        """The warehouse ``credentials`` name (a DuckDB file, a ``postgresql://`` URL), else dlt's configuration
        (``[destination.duckdb|postgres] credentials``); a DuckDB file defaults to ``warehouse.duckdb`` here.

        ``read_only`` opens a DuckDB file for reading only, beside other readers (`status`, `report`).
        Raises dlt's ``ConfigFieldMissingException`` when Postgres has no credentials.
        """
        if destination == "duckdb":
            target = credentials or dlt.secrets.get("destination.duckdb.credentials") or DEFAULT_DUCKDB_FILE
            if not isinstance(target, (str, os.PathLike)) or str(target).startswith(":"):
                from ..sources.certiverse import ConfigurationError

                raise ConfigurationError(f"the DuckDB warehouse must be a file path, not {target!r}")
            limit = dlt.config.get("destination.duckdb.memory_limit") or DUCKDB_MEMORY_LIMIT
            # Relative to where the command runs. Given a relative path, dlt would take a path an
            # earlier run of the same pipeline stored in its state, or dlt's local_dir, not this folder.
            return cls("duckdb", dataset, duckdb_file=Path(os.path.abspath(target)), memory_limit=str(limit),
                       read_only=read_only)
        if destination == "postgres":
            from dlt.destinations.impl.postgres.configuration import PostgresClientConfiguration

            factory = dlt.destinations.postgres(credentials=credentials) if credentials else dlt.destinations.postgres()
            # dlt's own resolution (explicit value, env, secrets.toml), as a run would do it later
            config = factory.configuration(PostgresClientConfiguration()._bind_dataset_name(dataset_name=dataset))
            return cls("postgres", dataset, postgres=config.credentials, read_only=read_only)
        raise ValueError(f"unknown destination {destination!r}: use duckdb or postgres")

    @property
    def name(self) -> str:
        """The warehouse as people name it: the DuckDB file, or ``postgresql://user@host:port/db`` and the
        dataset (never the password)."""
        if self.duckdb_file is not None:
            return str(self.duckdb_file)
        c = self.postgres
        return f"postgresql://{c.username}@{c.host}:{c.port or 5432}/{c.database} (dataset {self.dataset})"

    @property
    def folder_name(self) -> str:
        """The name of this warehouse's folder in the pipelines folder: readable, and unique per warehouse."""
        if self.duckdb_file is not None:
            readable, identity = f"duckdb-{self.duckdb_file.name.removesuffix('.duckdb')}", str(self.duckdb_file)
        else:
            c = self.postgres
            readable = f"postgres-{c.database}-{self.dataset}"
            identity = f"{c.host}:{c.port or 5432}/{c.database}"
        digest = hashlib.sha256(f"{identity}\n{self.dataset}".encode()).hexdigest()[:10]
        return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', readable)}-{digest}"

    def dlt_destination(self) -> Any:
        """dlt's destination for this warehouse."""
        if self.duckdb_file is not None:
            from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

            credentials = DuckDbCredentials(str(self.duckdb_file), read_only=self.read_only,
                                            global_config={"memory_limit": self.memory_limit})
            return dlt.destinations.duckdb(credentials=credentials)
        return dlt.destinations.postgres(credentials=self.postgres)


@dataclass(frozen=True)
class Targets:
    """Where the published copy of a DuckDB warehouse goes (``pipelines/publishing/``), read from ``[publish]``
    in ``.dlt/config.toml`` or ``PUBLISH__*``, else beside the warehouse."""

    duckdb_file: Path | None
    parquet_dir: Path | None
    storage_version: str = PUBLISH_STORAGE_VERSION
    memory_limit: str = PUBLISH_MEMORY_LIMIT

    @classmethod
    def for_warehouse(cls, working_file: str | os.PathLike[str]) -> "Targets":
        """Targets for a working DuckDB file: configured paths, else siblings named after it
        (``<stem>_published.duckdb``, ``<stem>_parquet/``)."""
        working = Path(working_file).resolve()
        stem = working.name.removesuffix(".duckdb")
        if not _flag("publish.enabled", True):
            return cls(None, None)
        duckdb_file = Path(dlt.config.get("publish.duckdb_file") or working.with_name(f"{stem}_published.duckdb"))
        parquet_dir = None
        if _flag("publish.parquet", True):
            parquet_dir = Path(dlt.config.get("publish.parquet_dir") or working.with_name(f"{stem}_parquet"))
        version = str(dlt.config.get("publish.storage_version") or PUBLISH_STORAGE_VERSION)
        memory = str(dlt.config.get("publish.memory_limit") or PUBLISH_MEMORY_LIMIT)
        if duckdb_file.resolve() == working:
            from ..sources.certiverse import ConfigurationError

            raise ConfigurationError(
                f"[publish] duckdb_file is the working warehouse itself ({working}): pick another file")
        return cls(duckdb_file.absolute(), parquet_dir.absolute() if parquet_dir else None, version, memory)


def _flag(key: str, default: bool) -> bool:
    value = dlt.config.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off")
    return bool(value)


@dataclass(frozen=True)
class RunContext:
    """What every step of one command needs: the warehouse, its local state, the lock policy, the publish
    targets, where notices go, and dlt's pipeline on them (made on first use)."""

    warehouse: Warehouse
    pipelines_dir: Path
    locks: LockPolicy = field(default_factory=LockPolicy)
    publish: Targets | None = None  # DuckDB: where the published copy goes; None: not published
    notifications: Webhook = field(default_factory=lambda: Webhook(None))  # [notifications]; default: none
    progress: Any = None  # a dlt progress collector, for the pipeline's steps
    pipeline_name: str = PIPELINE_NAME
    # the marts' reporting time zone, as configured; checked where the marts are built (transform/runner.py)
    timezone: str = DEFAULT_TIMEZONE

    @classmethod
    def from_config(
        cls,
        destination: str = "duckdb",
        credentials: Any = None,
        *,
        pipelines_dir: str | os.PathLike[str] | None = None,
        lock_timeout: float | None = None,
        on_wait: Callable[[str], None] | None = None,
        read_only: bool = False,
        progress: Any = None,
        pipeline_name: str = PIPELINE_NAME,
        dataset: str = DATASET_NAME,
        timezone: str | None = None,
    ) -> "RunContext":
        """The context from what the command line says, the rest from dlt's configuration.

        ``credentials``: see :meth:`Warehouse.from_config`. ``pipelines_dir``: the pipelines folder
        (default dlt's, ``~/.dlt/pipelines``). ``lock_timeout``: seconds to wait for a DuckDB file another
        process holds (default ``[destination.duckdb] lock_timeout``, else 180); ``on_wait`` hears why.
        Notices go to ``[notifications] webhook_url`` (``pipelines/notifications.py``), if set.
        ``timezone``: the marts' reporting time zone (default ``[marts] timezone``, env
        ``MARTS__TIMEZONE``, else UTC).
        Raises ``ConfigurationError`` when ``[publish]`` names the working file itself.
        """
        from dlt.common.pipeline import get_dlt_pipelines_dir

        warehouse = Warehouse.from_config(destination, credentials, dataset=dataset, read_only=read_only)
        if lock_timeout is None:
            configured = dlt.config.get("destination.duckdb.lock_timeout")
            lock_timeout = DEFAULT_LOCK_TIMEOUT if configured is None else float(configured)
        targets = Targets.for_warehouse(warehouse.duckdb_file) if warehouse.duckdb_file else None
        return cls(
            warehouse=warehouse,
            pipelines_dir=Path(os.path.abspath(pipelines_dir or get_dlt_pipelines_dir())),
            locks=LockPolicy(float(lock_timeout), on_wait),
            publish=targets,
            notifications=Webhook.from_configuration(configured_secrets()),
            progress=progress,
            pipeline_name=pipeline_name,
            timezone=str(timezone or dlt.config.get("marts.timezone") or DEFAULT_TIMEZONE),
        )

    @property
    def state_dir(self) -> Path:
        """This warehouse's folder in the pipelines folder: dlt's local state, the run lock, dbt's files."""
        return self.pipelines_dir / self.warehouse.folder_name

    @property
    def lock_file(self) -> Path:
        """The run lock: one run at a time per warehouse."""
        return self.state_dir / f"{self.pipeline_name}.lock"

    @property
    def dbt_dir(self) -> Path:
        """dbt's own files (``target/`` per dbt target with ``manifest.json`` and ``run_results.json``, partial
        parse, ``logs/``): beside dlt's folder of the pipeline, which dlt may reset."""
        return self.state_dir / "dbt"

    @functools.cached_property
    def pipeline(self) -> dlt.Pipeline:
        """dlt's pipeline on this warehouse, its state in :attr:`state_dir`."""
        options = {"progress": self.progress} if self.progress is not None else {}
        pipeline = dlt.pipeline(pipeline_name=self.pipeline_name, destination=self.warehouse.dlt_destination(),
                                dataset_name=self.warehouse.dataset, pipelines_dir=str(self.state_dir), **options)
        # dlt's own SIGINT/SIGTERM handler, installed around its normalize and load steps, records a
        # signal and forgets it when the step ends: a run stopped while loading went on to the end.
        # Python's default (or the CLI's handler, pipelines/cli/stopping.py) stays in charge instead.
        pipeline.runtime_config.intercept_signals = False
        return pipeline

    def sql_client(self) -> Any:
        """dlt's SQL client on the warehouse's dataset (a context manager)."""
        return self.pipeline.sql_client()

    @property
    def published_hint(self) -> str | None:
        """The published DuckDB copy, to name in a message; None if there is none."""
        target = self.publish.duckdb_file if self.publish else None
        return str(target) if target else None

    def on_warehouse(self, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``action(*args, **kwargs)``, waiting out a DuckDB file another process holds (see ``locks.py``):
        every step that opens the working file runs through here."""
        path = str(self.warehouse.duckdb_file) if self.warehouse.duckdb_file else None
        return retry_when_locked(functools.partial(action, *args, **kwargs), path, self.locks,
                                 read_only=self.warehouse.read_only, published=self.published_hint)
