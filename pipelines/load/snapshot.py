"""Read what the warehouse holds, for the nightly plan of the source."""

from __future__ import annotations

import logging

import dlt
import pyarrow as pa

from ...sources.certiverse import Snapshot

from .warehouse import columns, tables

log = logging.getLogger(__name__)


def read_snapshot(pipeline: dlt.Pipeline) -> Snapshot | None:
    """The current vouchers and purchases of the destination, or None if there are none yet.

    What the warehouse holds decides, not the local schema: a file deleted or replaced
    behind dlt's back has no tables whatever the local state says.
    """
    if not pipeline.default_schema_name:
        return None
    snapshot = Snapshot()
    with pipeline.sql_client() as client:
        if not {"vouchers", "purchases"} <= tables(client):
            log.info("the warehouse has no vouchers or purchases table: reading everything")
            return None
        # A tenant where no voucher ever had an exam has no such column.
        has_exam = "store_exam_code" in columns(client, "vouchers")
        exam = "store_exam_code" if has_exam else "cast(null as varchar)"
        linked = "store_exam_code is not null" if has_exam else "false"
        vouchers = client.make_qualified_table_name("vouchers")
        purchases = client.make_qualified_table_name("purchases")
        current = "_dlt_valid_to is null"
        # Streamed in batches into columns: on a large tenant this is hundreds of
        # thousands of rows, held for the whole run.
        live = (
            f"select id, voucher_code, voucher_purchase_code, {exam}, expiration_date_utc from {vouchers} "
            f"where {current} and not is_used and is_active"
        )
        if pipeline.destination.destination_name == "duckdb":
            native = client.native_connection
            # A missing table would otherwise be looked up among this function's Python variables.
            native.execute("set python_enable_replacements = false")
            # DuckDB's own Arrow export, in batches: no Python row per voucher.
            for batch in native.sql(live).to_arrow_reader(100_000):
                snapshot.live.add_arrow(pa.Table.from_batches([batch]))
        else:
            with client.execute_query(live) as cursor:
                while rows := cursor.fetchmany(10_000):
                    snapshot.live.add(rows)
        snapshot.vouchers = client.execute_sql(f"select count(*) from {vouchers} where {current}")[0][0]
        for (purchase,) in client.execute_sql(
            f"select distinct voucher_purchase_code from {vouchers} "
            f"where {current} and not ({linked}) and (is_used or not is_active)"
        ):
            snapshot.unlinked_settled.add(purchase)
        for code, status, quantity in client.execute_sql(
            f"select voucher_purchase_code, status, quantity from {purchases}"
        ):
            snapshot.purchases[code] = (status, int(quantity or 0))
        # Purchases known only by their vouchers: the purchase listing missed them (the next one is checked).
        for (purchase,) in client.execute_sql(
            f"select distinct voucher_purchase_code from {vouchers} v where {current} and not exists "
            f"(select 1 from {purchases} p where p.voucher_purchase_code = v.voucher_purchase_code)"
        ):
            snapshot.unlisted_purchases.add(purchase)
    if not snapshot.purchases:
        return None
    return snapshot
