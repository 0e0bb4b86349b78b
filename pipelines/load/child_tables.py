"""Child tables the source declares exist in the warehouse before their first row.

The resources declare their documented child tables (``partners__users``,
``programs__store_exams``, ...) through dlt's ``nested_hints``, and yield dlt's
``materialize_table_schema()`` marker when a list is empty, so an empty tenant gets
every root table with its columns. dlt creates a child table only once it has seen
rows for it, though, and the staging models read ``programs__store_exams`` whatever
the tenant holds. dlt has no marker for a child table (a table variant of a nested
name fails at extract, and one marked as having seen data is created only in the
staging dataset, which breaks the merge), so the missing ones are created here with
dlt's own DDL from the schema: same columns and types as dlt would give them, and
dlt finds them in place when rows come.
"""

from __future__ import annotations

import logging

import dlt
from dlt.common.schema.utils import has_table_seen_data

from .warehouse import tables

log = logging.getLogger(__name__)


def create_declared_child_tables(pipeline: dlt.Pipeline) -> list[str]:
    """Create the declared child tables the warehouse lacks (empty); returns their names."""
    if not pipeline.default_schema_name:
        return []
    schema = pipeline.default_schema
    unseen = [name for name, table in schema.tables.items()
              if table.get("parent") and not has_table_seen_data(table) and _declared(table)]
    if not unseen:  # the usual night: every child table has had rows, nothing to ask the warehouse
        return []
    with pipeline.sql_client() as client:
        present = tables(client)
    missing = [name for name in unseen if name not in present and schema.tables[name]["parent"] in present]
    if missing:
        log.info("creating child tables %s without rows (declared, no rows yet)", ", ".join(missing))
        with pipeline.destination_client() as client:
            # force: the stored schema is already this version; only the DDL of these tables is run
            client.update_stored_schema(only_tables=missing, force=True)
    return missing


def _declared(table: dict) -> bool:
    """A child table known from the source's hints: its link columns are declared, not yet seen in rows."""
    return "_dlt_parent_id" in table.get("columns", {})
