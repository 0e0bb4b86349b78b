"""Marts as pandas DataFrames, for notebooks: ``from pipelines.reporting import mart; mart("voucher_expiry")``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pandas

from ..context import DATASET_NAME, Warehouse


def mart(
    name: str,
    duckdb_file: str = "warehouse_published.duckdb",
    dataset: str = DATASET_NAME,
    *,
    destination: str = "duckdb",
    credentials: Any = None,
) -> pandas.DataFrame:
    """Every row of one mart (or any published relation) as a DataFrame.

    Reads the published copy (``warehouse_published.duckdb`` by default, relations in
    its ``main`` schema); a working warehouse file (relations in ``dataset``) works too.
    Either is opened read-only and only while it reads, so it shares the file with other
    readers. ``destination="postgres"`` reads Postgres, with ``credentials`` (a
    ``postgresql://`` URL) or dlt's config (``DESTINATION__POSTGRES__CREDENTIALS``).
    Needs no pipeline state.
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"not a table name: {name!r}")
    if destination == "duckdb":
        path = credentials or duckdb_file
        # DuckDB would create a missing file and then report a missing table: say what is wrong instead.
        if not Path(path).exists():
            raise FileNotFoundError(f"no DuckDB file {path!r}: load one with `certiverse run` or pass its path")
        with duckdb.connect(str(path), read_only=True) as connection:
            schemas = {s for (s,) in connection.execute(
                "select schema_name from information_schema.schemata where catalog_name = current_database()"
            ).fetchall()}
            schema = dataset if dataset in schemas else "main"
            return connection.execute(f'select * from "{schema}"."{name}"').df()
    # dlt.dataset knows only the tables dlt loaded, not the marts; its SQL client reads any table.
    client = dlt.dataset(Warehouse.from_config(destination, credentials, dataset=dataset).dlt_destination(),
                         dataset).sql_client
    with client, client.execute_query(f"select * from {client.make_qualified_table_name(name)}") as cursor:
        return cursor.df()


__all__ = ["mart"]
