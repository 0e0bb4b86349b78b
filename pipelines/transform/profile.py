"""The dbt profile of a warehouse: the same destination, credentials and DuckDB settings the load uses.

The profile ``certiverse`` has two targets on the pipeline's destination:

- ``dataset``: the models are built in the pipeline's dataset itself (schema
  ``certiverse`` by default), next to the raw tables; what an analyst running
  ``dbt build`` by hand gets;
- ``build``: the models are built in the **build schema** ``<dataset>_build``,
  out of readers' sight, and ``run_transforms`` moves them into the dataset
  afterwards (Postgres, see ``pipelines/transform/runner.py``).

Both read the raw tables from the dataset (var ``certiverse_schema``). The
profile holds the Postgres password, so it is written only into a folder of its
own (mode 0700, file 0600) and never printed or logged.

``certiverse dbt-profile [--destination postgres] [--duckdb-file F] [--profiles-dir DIR]`` writes the
profile for running ``dbt`` by hand (docs/analysts.md, "The marts as a dbt project").
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..context import Warehouse

PROFILE_NAME = "certiverse"
BUILD_TARGET = "build"
DATASET_TARGET = "dataset"
BUILD_SCHEMA_SUFFIX = "_build"
# Models and tests dbt runs at once. Most of a build is dbt's own bookkeeping around ~80 small
# queries (the tests); running four at a time took a small build from 3.0 to 1.9 s on two cores.
THREADS = 4


def build_schema(dataset: str) -> str:
    """Where ``run_transforms`` builds the models before moving them into ``dataset``."""
    return dataset + BUILD_SCHEMA_SUFFIX


def profile(warehouse: Warehouse) -> dict[str, Any]:
    """The profile as a dict (credentials included: write it with ``write_profile`` only)."""
    if warehouse.duckdb_file is not None:
        connection: dict[str, Any] = {
            "type": "duckdb",
            "path": str(warehouse.duckdb_file),
            # the load's memory cap; no extension that needs a download: nothing in `extensions`, and
            # DuckDB may not fetch one itself
            "settings": {"memory_limit": warehouse.memory_limit, "autoinstall_known_extensions": "false"},
            # close the file when dbt's last connection closes, so the loader (or the dlt SQL
            # client of the same process) can open it again with its own configuration
            "keep_open": False,
        }
    else:
        credentials = warehouse.postgres
        connection = {
            "type": "postgres",
            "host": credentials.host,
            "port": int(credentials.port or 5432),
            "user": credentials.username,
            "password": str(credentials.password or ""),
            "dbname": credentials.database,
        }
        if credentials.query and credentials.query.get("sslmode"):
            connection["sslmode"] = credentials.query["sslmode"]
        if credentials.connect_timeout:
            connection["connect_timeout"] = int(credentials.connect_timeout)
    connection["threads"] = THREADS
    dataset = warehouse.dataset
    return {
        PROFILE_NAME: {
            "target": DATASET_TARGET,
            "outputs": {
                DATASET_TARGET: {**connection, "schema": dataset},
                BUILD_TARGET: {**connection, "schema": build_schema(dataset)},
            },
        }
    }


def write_profile(warehouse: Warehouse, profiles_dir: str | Path) -> Path:
    """Write ``profiles.yml`` into ``profiles_dir`` (created 0700; the file is 0600); returns its path."""
    directory = Path(profiles_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "profiles.yml"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        yaml.safe_dump(profile(warehouse), handle, sort_keys=False)
    return path


@contextmanager
def temporary_profile(warehouse: Warehouse) -> Iterator[Path]:
    """A folder holding the warehouse's profile, deleted (password and all) on leaving."""
    directory = tempfile.mkdtemp(prefix="certiverse-dbt-profile-")
    try:
        write_profile(warehouse, directory)
        yield Path(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
