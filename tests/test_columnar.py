"""Vouchers as Arrow tables: flattening, types, drift and the scd2 row version."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from certiverse_warehouse.sources.certiverse.columnar import CONTENT_HASH, content_hash, voucher_batches, voucher_table

USED = {
    "id": "v1", "voucherCode": "ACME-1", "voucherPurchaseCode": "P1", "isActive": True, "isUsed": True,
    "expirationDateUtc": "2027-01-31T00:00:00Z", "assignedDateUtc": "2026-02-01T10:00:00.1234567Z",
    "recipientEmail": "a@example.com", "storeExamCode": "EX1",
    "usedBy": {"clientCandidateId": "c1", "firstName": "Ada", "lastName": "L", "personId": "p1",
               "usedDateUtc": "2026-03-01T09:30:00+00:00"},
}
UNASSIGNED = {"id": "v2", "voucherCode": "ACME-2", "voucherPurchaseCode": "P1", "isActive": True, "isUsed": False,
              "expirationDateUtc": "2027-01-31T00:00:00Z"}


def test_nested_objects_flatten_and_documented_fields_get_their_types():
    table = voucher_table([USED, UNASSIGNED])
    rows = {r["id"]: r for r in table.to_pylist()}
    assert rows["v1"]["used_by__first_name"] == "Ada"
    assert rows["v2"]["used_by__first_name"] is None
    assert table.schema.field("is_used").type == pa.bool_()
    assert table.schema.field("expiration_date_utc").type == pa.timestamp("us", tz="UTC")
    assert rows["v1"]["used_by__used_date_utc"] == dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.timezone.utc)
    # Seven fractional digits (.NET's format) are beyond Arrow's parser: dlt's parser takes them.
    assert rows["v1"]["assigned_date_utc"] == dt.datetime(2026, 2, 1, 10, 0, 0, 123456, tzinfo=dt.timezone.utc)
    assert not table.schema.field("id").nullable and not table.schema.field(CONTENT_HASH).nullable


def test_undocumented_fields_become_columns_whatever_their_shape():
    drifted = dict(UNASSIGNED, archivedReason="bulk", tags=["a", "b"], usedBy={"badge": {"level": 2}},
                   mixed=1)
    other = dict(UNASSIGNED, id="v3", mixed="one")
    rows = {r["id"]: r for r in voucher_table([drifted, other]).to_pylist()}
    assert rows["v2"]["archived_reason"] == "bulk"
    assert rows["v2"]["tags"] == '["a","b"]'
    assert rows["v2"]["used_by__badge__level"] == 2
    # A field whose values have no common type keeps its JSON text.
    assert (rows["v2"]["mixed"], rows["v3"]["mixed"]) == ("1", '"one"')


def test_the_row_version_changes_exactly_when_the_record_does():
    reordered = dict(reversed(list(USED.items())))
    assert content_hash(reordered) == content_hash(USED)
    assert content_hash(dict(USED, expirationDateUtc="2027-06-30T00:00:00Z")) != content_hash(USED)
    table = voucher_table([USED])
    assert table.column(CONTENT_HASH).to_pylist() == [content_hash(USED)]
    # A field that appears on other records leaves this one's version alone.
    assert voucher_table([USED, dict(UNASSIGNED, newField="x")]).column(CONTENT_HASH)[0].as_py() == content_hash(USED)


def test_pages_are_grouped_into_tables_and_nothing_is_lost():
    pages = [[dict(UNASSIGNED, id=f"v{p}-{i}") for i in range(7)] for p in range(5)]
    tables = list(voucher_batches(pages, batch_size=10))
    assert [t.num_rows for t in tables] == [14, 14, 7]
    assert sorted(r for t in tables for r in t.column("id").to_pylist()) == sorted(
        r["id"] for page in pages for r in page)
