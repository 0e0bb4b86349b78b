"""Columns the API started to send: the pipeline's schema before a load against after it.

dlt adds a column to its schema (and the warehouse) the first time a record carries a
field with a value; comparing the data columns of the schema before and after a load
says which fields are new. A first load (no schema before) finds nothing new: every
column is new then, and nobody needs telling. dlt's own columns (``_dlt_*``) and tables
are left out; columns dlt has seen only as null (incomplete) are not in the warehouse yet.
"""

from __future__ import annotations

from typing import Any

Columns = dict[str, frozenset[str]]


def data_columns(schema: Any) -> Columns:
    """Data table -> its complete data columns, of a dlt ``Schema`` (None: no schema yet)."""
    if schema is None:
        return {}
    return {
        name: frozenset(column for column in schema.get_table_columns(name) if not column.startswith("_dlt"))
        for name in schema.data_table_names()
        if not name.startswith("_dlt")
    }


def new_columns(before: Columns, after: Columns) -> dict[str, list[str]]:
    """Table -> columns in ``after`` but not in ``before`` (new tables with all their columns);
    empty when there was no schema before."""
    if not before:
        return {}
    added = {table: sorted(columns - before.get(table, frozenset())) for table, columns in sorted(after.items())}
    return {table: columns for table, columns in added.items() if columns}


def pipeline_columns(pipeline: Any) -> Columns:
    """The data columns of the pipeline's default schema as it is now (empty before the first load)."""
    return data_columns(pipeline.default_schema) if pipeline.default_schema_name else {}
