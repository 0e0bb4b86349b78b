"""Marts as pandas DataFrames, for notebooks: ``from pipelines.frames import mart; mart("voucher_expiry")``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dlt
import pandas

from .load import DATASET_NAME, make_destination


def mart(
    name: str,
    duckdb_file: str = "warehouse.duckdb",
    dataset: str = DATASET_NAME,
    *,
    destination: str = "duckdb",
    credentials: Any = None,
) -> pandas.DataFrame:
    """Every row of one mart (or any table of the dataset) as a DataFrame.

    Reads ``duckdb_file`` by default; ``destination="postgres"`` reads Postgres,
    with ``credentials`` (a ``postgresql://`` URL) or dlt's config
    (``DESTINATION__POSTGRES__CREDENTIALS``). Needs no pipeline state.
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"not a table name: {name!r}")
    if destination == "duckdb":
        credentials = credentials or duckdb_file
        # DuckDB would create a missing file and then report a missing table: say what is wrong instead.
        if isinstance(credentials, str) and not Path(credentials).exists():
            raise FileNotFoundError(f"no DuckDB file {credentials!r}: load one with `certiverse run` or pass its path")
    # dlt.dataset knows only the tables dlt loaded, not the marts; its SQL client reads any table.
    client = dlt.dataset(make_destination(destination, credentials), dataset).sql_client
    with client, client.execute_query(f"select * from {client.make_qualified_table_name(name)}") as cursor:
        return cursor.df()


__all__ = ["mart"]
