"""Marts as pandas DataFrames, for notebooks: ``from pipelines.reporting import mart; mart("voucher_expiry")``.

Every reader gets one type per column: ``mart()`` converts through Arrow exactly as pandas and
pyarrow convert the published Parquet files, so money (``decimal(18, 2)`` / ``decimal(18, 4)`` in
DuckDB and Postgres, the same decimal type in Parquet) arrives as ``decimal.Decimal`` values, never as
floats, whichever the reader; dates as ``datetime.date``, timestamps with time zone as
``datetime64[us, UTC]`` (docs/analysts.md).
"""

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
    Needs no pipeline state. The columns have the dtypes pandas gives the published Parquet
    file of the same relation: decimals (money) as ``decimal.Decimal``.
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"not a table name: {name!r}")
    if destination == "duckdb":
        path = credentials or duckdb_file
        # DuckDB would create a missing file and then report a missing table: say what is wrong instead.
        if not Path(path).exists():
            raise FileNotFoundError(f"no DuckDB file {path!r}: load one with `certiverse run` or pass its path")
        with duckdb.connect(str(path), read_only=True) as connection:
            # timestamps with time zone as Parquet has them (UTC), not in this machine's zone
            connection.execute("set TimeZone = 'UTC'")
            schemas = {s for (s,) in connection.execute(
                "select schema_name from information_schema.schemata where catalog_name = current_database()"
            ).fetchall()}
            schema = dataset if dataset in schemas else "main"
            # through Arrow, as the Parquet readers convert: DuckDB's own .df() makes decimals floats
            return connection.sql(f'select * from "{schema}"."{name}"').to_arrow_table().to_pandas()
    # dlt.dataset knows only the tables dlt loaded, not the marts; its SQL client reads any table.
    client = dlt.dataset(Warehouse.from_config(destination, credentials, dataset=dataset).dlt_destination(),
                         dataset).sql_client
    with client, client.execute_query(f"select * from {client.make_qualified_table_name(name)}") as cursor:
        return cursor.df()


__all__ = ["mart"]
