"""Values read by meaning (``values.py``) and voucher columns read leniently (``columnar.py``): every reasonable
form of a value gives the documented type, and what has no reading stops the run naming where."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from certiverse_warehouse.sources.certiverse import columnar
from certiverse_warehouse.sources.certiverse.columnar import CONTENT_HASH, content_hash, voucher_table
from certiverse_warehouse.sources.certiverse.values import (
    UnreadableValueError,
    read_bool,
    read_float,
    read_int,
    read_records,
    read_text,
    read_timestamp,
)

INSTANT = dt.datetime(2026, 2, 1, 10, 0, 0, 123456, tzinfo=dt.timezone.utc)
MIDNIGHT = dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc)
MS = int(INSTANT.timestamp() * 1000)


@pytest.mark.parametrize("sent, meant", [
    (True, True), (False, False), ("true", True), ("True", True), ("FALSE", False), (1, True), (0, False),
    (1.0, True), ("1", True), ("0", False), ("yes", True), ("No", False), ("t", True), ("f", False),
    (" true\t", True), ("\ufefffalse", False), ("\u00a0on ", True), (None, None), ("", None), ("  ", None),
])
def test_booleans_are_read_in_any_reasonable_form(sent, meant):
    assert read_bool(sent) is meant


@pytest.mark.parametrize("sent, meant", [
    (12, 12), (12.0, 12), ("12", 12), (" 12 ", 12), ("\ufeff12", 12), ("1.2e1", 12), ("12.00", 12),
    ("1.200000000000000e+01", 12), (-3, -3), (None, None), ("", None),
])
def test_whole_numbers_are_read_in_any_reasonable_form(sent, meant):
    assert read_int(sent) == meant and type(read_int(sent)) is type(meant)


@pytest.mark.parametrize("sent, meant", [
    (12.5, 12.5), (12, 12.0), ("12.50", 12.5), ("1.25e1", 12.5), (" 12.5\n", 12.5), ("0.1", 0.1),
    (None, None), ("", None),
])
def test_decimals_are_read_in_any_reasonable_form(sent, meant):
    assert read_float(sent) == meant and type(read_float(sent)) is type(meant)


@pytest.mark.parametrize("sent, meant", [
    ("2026-02-01T10:00:00.123456Z", INSTANT),
    ("2026-02-01T10:00:00.1234567Z", INSTANT),  # ASP.NET's seven digits
    ("2026-02-01T10:00:00.1234567", INSTANT),  # no zone: UTC, as the reference says
    ("2026-02-01T10:00:00.123456+00:00", INSTANT),
    ("2026-02-01T05:00:00.123456-05:00", INSTANT),
    ("2026-02-01 10:00:00.123456Z", INSTANT),
    (" 2026-02-01T10:00:00.123456Z\t", INSTANT),
    ("\ufeff2026-02-01T10:00:00.123456Z", INSTANT),
    (f"/Date({MS})/", INSTANT.replace(microsecond=123000)),
    (f"/Date({MS}+0100)/", INSTANT.replace(microsecond=123000)),  # ASP.NET's offset is informational
    ("2026-02-01", MIDNIGHT),
    (int(MIDNIGHT.timestamp()), MIDNIGHT),
    (int(MIDNIGHT.timestamp() * 1000), MIDNIGHT),
    (None, None), ("", None),
])
def test_timestamps_are_read_in_any_reasonable_form_as_utc_instants(sent, meant):
    read = read_timestamp(sent)
    assert read == meant
    assert read is None or read.utcoffset() == dt.timedelta(0)


def test_text_loses_stray_whitespace_and_byte_order_marks_and_keeps_what_is_inside():
    assert read_text("  Acme Corp\t") == "Acme Corp"
    assert read_text("\ufeff\u00a0Acme  Corp\u200b") == "Acme  Corp"
    assert read_text(123) == "123" and read_text(True) == "true" and read_text(None) is None


@pytest.mark.parametrize("reader, sent", [
    (read_bool, "maybe"), (read_bool, 2), (read_bool, {"value": True}), (read_bool, [True]),
    (read_int, 12.5), (read_int, "12.5"), (read_int, True), (read_int, "twelve"), (read_int, "NaN"),
    (read_float, "abc"), (read_float, "inf"), (read_float, False), (read_float, {}),
    (read_timestamp, "yesterday"), (read_timestamp, True), (read_timestamp, {"utc": "2026-01-01"}),
    (read_text, {"name": "x"}), (read_text, ["x"]),
])
def test_a_value_with_no_reading_is_refused(reader, sent):
    with pytest.raises(ValueError):
        reader(sent)


PURCHASE = {
    "amountPaid": 4266.0, "id": "pu-1", "isArchived": False, "notes": " typed by a person ", "partnerName": "Initech",
    "programName": "Data Analyst", "purchaseDateUtc": "2022-11-25T17:01:25Z", "purchasedByFirstName": "Jack",
    "purchasedByLastName": "Silva", "quantity": 79, "quantityRemaining": 20, "quantityUsed": 59,
    "status": "Complete", "voucherPurchaseCode": "VP-SE2XZBF9",
}


def test_a_purchase_in_odd_forms_reads_as_the_well_formed_one():
    odd = dict(PURCHASE, amountPaid="4266.00", isArchived="False", partnerName=" Initech\t",
               purchaseDateUtc="2022-11-25T12:01:25.0000000-05:00", quantity="79", quantityRemaining=20.0,
               quantityUsed="5.9e1", status="\ufeffComplete ", newField={"kept": "as sent"})
    read = read_records("purchases", [odd])[0]
    well = read_records("purchases", [dict(PURCHASE)])[0]
    assert read == dict(well, newField={"kept": "as sent"})
    assert read["notes"] == PURCHASE["notes"]  # free text: as sent
    assert read["purchaseDateUtc"] == dt.datetime(2022, 11, 25, 17, 1, 25, tzinfo=dt.timezone.utc)
    assert type(read["quantity"]) is int and type(read["amountPaid"]) is float and read["isArchived"] is False


def test_null_or_missing_documented_fields_and_unknown_statuses_are_kept_as_sent():
    sparse = {"id": "pu-2", "status": "PaymentDeclined", "notes": None, "quantity": None}
    assert read_records("purchases", [dict(sparse)]) == [sparse]


@pytest.mark.parametrize("endpoint, record, field", [
    ("purchases", dict(PURCHASE, quantity="lots"), "quantity"),
    ("purchases", dict(PURCHASE, isArchived="sometimes"), "isArchived"),
    ("partners", {"id": "pa-1", "users": [{"email": "a@b.c", "isActive": "maybe"}]}, "users[0].isActive"),
    ("programs", {"id": "pr-1", "partners": {"partnerCostPerVoucher": "cheap"}}, "partners.partnerCostPerVoucher"),
    ("programs", {"id": "pr-1", "storeExams": "none"}, "storeExams"),
])
def test_an_unreadable_value_names_the_endpoint_the_record_and_the_field(endpoint, record, field):
    with pytest.raises(UnreadableValueError) as caught:
        read_records(endpoint, [record])
    assert (caught.value.endpoint, caught.value.record, caught.value.field) == (endpoint, record["id"], field)
    assert endpoint in str(caught.value) and record["id"] in str(caught.value) and field in str(caught.value)


@pytest.mark.parametrize("record", [{"name": "no id"}, {"id": None}, {"id": "  "}, "not an object"])
def test_a_record_without_an_id_cannot_be_stored(record):
    with pytest.raises(UnreadableValueError, match="id|object"):
        read_records("partners", [record])


USED = {
    "id": "v1", "voucherCode": "ACME-1", "voucherPurchaseCode": "P1", "isActive": True, "isUsed": True,
    "expirationDateUtc": "2027-01-31T00:00:00Z", "assignedDateUtc": "2026-02-01T10:00:00Z",
    "recipientEmail": "a@example.com", "reservationStatus": "Completed", "storeExamCode": "EX1",
    "usedBy": {"clientCandidateId": "c1", "firstName": "Ada", "lastName": "L", "personId": "p1",
               "usedDateUtc": "2026-03-01T09:30:00Z"},
}
OPEN = {"id": "v2", "voucherCode": "ACME-2", "voucherPurchaseCode": "P1", "isActive": True, "isUsed": False,
        "expirationDateUtc": "2027-01-31T00:00:00Z"}


def odd_forms(used: dict, open_: dict) -> list[dict]:
    """The same two vouchers as an API with habits sends them."""
    return [
        dict(used, isActive="True", isUsed=1, recipientEmail=" a@example.com\t", reservationStatus="\ufeffCompleted",
             usedBy=dict(used["usedBy"], firstName="Ada ")),
        dict(open_, isActive="1", isUsed="false", assignedDateUtc=None, usedBy=None, reservationCode=None),
    ]


def test_vouchers_in_odd_forms_make_the_same_table_and_row_versions_as_well_formed_ones():
    well = voucher_table(copy.deepcopy([USED, OPEN]))
    odd = voucher_table(odd_forms(copy.deepcopy(USED), copy.deepcopy(OPEN)))
    assert odd.schema == well.schema
    assert odd.to_pylist() == well.to_pylist()
    assert odd.column(CONTENT_HASH).to_pylist() == [content_hash(USED), content_hash(OPEN)]


def test_a_well_formed_batch_never_takes_the_value_by_value_path(monkeypatch):
    def refuse(*args):
        raise AssertionError("a well-formed column was read value by value")

    monkeypatch.setattr(columnar, "_read_slowly", refuse)
    batch = [dict(OPEN, id=f"v{i}", recipientEmail=f"p{i}@example.com") for i in range(1_000)] + [copy.deepcopy(USED)]
    assert voucher_table(batch).num_rows == len(batch)


@pytest.mark.parametrize("stray", [" ", "\t", "\n", "\u00a0", "\u2003", "\u3000", "\ufeff"])
def test_stray_characters_at_either_end_of_a_text_column_are_found_and_dropped(stray):
    for padded in (stray + "a@example.com", "a@example.com" + stray):
        table = voucher_table([dict(OPEN, id="v0", recipientEmail="x@example.com"), dict(OPEN, recipientEmail=padded)])
        assert table.column("recipient_email").to_pylist() == ["x@example.com", "a@example.com"]


def test_an_unreadable_voucher_value_names_the_voucher_and_the_field():
    with pytest.raises(UnreadableValueError) as caught:
        voucher_table([dict(OPEN), dict(OPEN, id="v9", isUsed="perhaps")])
    assert (caught.value.endpoint, caught.value.record, caught.value.field) == ("vouchers", "v9", "isUsed")
    with pytest.raises(UnreadableValueError) as caught:
        voucher_table([dict(USED, usedBy=dict(USED["usedBy"], usedDateUtc="last tuesday"))])
    assert (caught.value.record, caught.value.field) == ("v1", "usedBy.usedDateUtc")


@pytest.mark.parametrize("broken", [dict(OPEN, id=None), {k: v for k, v in OPEN.items() if k != "id"},
                                    dict(OPEN, isUsed={"value": False})])
def test_a_voucher_without_an_id_or_with_an_object_for_a_value_stops_the_run(broken):
    with pytest.raises(UnreadableValueError):
        voucher_table([dict(USED), broken])


def test_a_field_null_everywhere_adds_no_column_and_an_empty_batch_has_every_documented_column():
    table = voucher_table([dict(OPEN, surveyAnswer=None)])
    assert "survey_answer" not in table.column_names
    empty = voucher_table([])
    assert empty.num_rows == 0 and empty.schema == voucher_table([copy.deepcopy(USED)]).schema
