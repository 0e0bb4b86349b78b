"""The reporting time zone (`[marts] timezone`): every date and month the marts derive from a timestamp
is its calendar date in that zone, daylight saving time included, on DuckDB and on Postgres.

The warehouse is the small tenant with a few timestamps moved next to New York's end of daylight
saving time (1 November 2026, 02:00 EDT = 06:00 UTC) and to the end of November, when New York
is five hours behind UTC, not four. Expected dates come from the tenant's records with those moves,
converted by Python's zoneinfo: a fixed offset, or UTC, gives other dates for some of them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from certiverse_warehouse.pipelines.cli import EXIT_CONFIG, main
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.pipelines.transform import api_date, reporting_timezone, run_transforms
from certiverse_warehouse.pipelines.transform import runner
from certiverse_warehouse.simulator import SimulatorApp, Tenant, serve
from certiverse_warehouse.sources.certiverse import ConfigurationError

ZONE = "America/New_York"
AS_OF = dt.date(2026, 11, 30)  # a New York date
# instants around New York's month ends and its change from EDT (UTC-4) to EST (UTC-5)
USED_AT = (
    "2026-10-31T23:59:00Z",  # 19:59 EDT on 31 October
    "2026-11-01T03:30:00Z",  # 23:30 EDT on 31 October: October in New York, November in UTC
    "2026-11-01T04:30:00Z",  # 00:30 EDT on 1 November
    "2026-11-01T05:30:00Z",  # 01:30 EDT, the first 01:30 of the night
    "2026-11-01T06:30:00Z",  # 01:30 EST, the second
    "2026-12-01T04:30:00Z",  # 23:30 EST on 30 November: November in New York (a fixed UTC-4 says December)
)
PURCHASED_AT = "2026-11-01T03:30:00Z"  # bought on 31 October in New York
EXPIRES_AT = "2026-12-01T04:30:00Z"  # expires on 30 November in New York: still redeemable on AS_OF
REDEEMABLE = ("reserved", "assigned_unused", "unassigned")


def local_date(instant: str, zone: str = ZONE) -> dt.date:
    return dt.datetime.fromisoformat(instant.replace("Z", "+00:00")).astimezone(ZoneInfo(zone)).date()


def moved_records(tenant: Tenant) -> dict[str, Any]:
    """The tenant's records with the timestamps this module moves: what the warehouse holds after `move`."""
    vouchers = [dict(v) for v in tenant.records("vouchers")]
    used = sorted((v for v in vouchers if v["isUsed"] and (v.get("usedBy") or {}).get("usedDateUtc")),
                  key=lambda v: v["id"])
    for voucher, instant in zip(used, USED_AT):
        voucher["usedBy"] = {**voucher["usedBy"], "usedDateUtc": instant}
    unused = sorted((v for v in vouchers if not v["isUsed"] and v["isActive"]), key=lambda v: v["id"])
    unused[0]["expirationDateUtc"] = EXPIRES_AT
    purchases = [dict(p) for p in tenant.records("purchases")]
    bought = sorted(purchases, key=lambda p: p["id"])[0]
    bought["purchaseDateUtc"] = PURCHASED_AT
    return {"vouchers": vouchers, "purchases": purchases, "moved_used": [v["id"] for v in used[:len(USED_AT)]],
            "moved_expiry": unused[0]["id"], "moved_purchase": bought["id"]}


def move(pipeline: Any, records: dict[str, Any]) -> None:
    """Write the moved timestamps into the raw tables (current voucher versions), in SQL both engines run."""
    by_id = {v["id"]: v for v in records["vouchers"]}
    purchase = next(p for p in records["purchases"] if p["id"] == records["moved_purchase"])
    with pipeline.sql_client() as client:
        vouchers = client.make_qualified_table_name("vouchers")
        for voucher_id in records["moved_used"]:
            client.execute_sql(f"update {vouchers} set used_by__used_date_utc = cast(%s as timestamp with time zone) "
                               "where id = %s and _dlt_valid_to is null",
                               by_id[voucher_id]["usedBy"]["usedDateUtc"], voucher_id)
        client.execute_sql(f"update {vouchers} set expiration_date_utc = cast(%s as timestamp with time zone) "
                           "where id = %s and _dlt_valid_to is null", EXPIRES_AT, records["moved_expiry"])
        client.execute_sql(f"update {client.make_qualified_table_name('purchases')} "
                           "set purchase_date_utc = cast(%s as timestamp with time zone) where id = %s",
                           purchase["purchaseDateUtc"], purchase["id"])


def load_moved(tenant: Tenant, context: RunContext) -> RunContext:
    """The tenant loaded, its timestamps moved, the marts built in New York's time zone (the context's)."""
    app = SimulatorApp(tenant)
    with serve(app) as url:
        run_load(context, {"base_url": url, "api_token": app.token}, as_of=tenant.now())
    move(context, moved_records(tenant))
    run_transforms(context, AS_OF)
    return context


def rows(pipeline: Any, sql: str) -> list[tuple]:
    with pipeline.sql_client() as client:
        sql = sql.replace("{ds}", client.fully_qualified_dataset_name())
        return [tuple(row) for row in client.execute_sql(sql) or ()]


@pytest.fixture(scope="module")
def tenant(small_tenant_template: Tenant) -> Tenant:
    return small_tenant_template


@pytest.fixture(scope="module")
def records(tenant: Tenant) -> dict[str, Any]:
    return moved_records(tenant)


@pytest.fixture(scope="module")
def duckdb_new_york(tenant: Tenant, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("timezone_duckdb")
    return load_moved(tenant, RunContext.from_config("duckdb", str(root / "w.duckdb"), pipelines_dir=str(root / "pd"),
                                                     timezone=ZONE))


@pytest.fixture(scope="module")
def postgres_new_york(tenant: Tenant, postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("timezone_postgres")
    dsn = postgres_server.create_database("certiverse_timezone")
    return load_moved(tenant, RunContext.from_config("postgres", dsn, pipelines_dir=str(root / "pd"), timezone=ZONE))


ENGINES = [pytest.param("duckdb_new_york", id="duckdb"),
           pytest.param("postgres_new_york", id="postgres", marks=pytest.mark.postgres)]


# -- every date in the reporting time zone, on both engines ---------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_use_dates_and_redemption_months_are_new_york_dates(
    engine: str, records: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    pipeline = request.getfixturevalue(engine)
    used = {v["id"]: local_date(v["usedBy"]["usedDateUtc"]) for v in records["vouchers"]
            if v["isUsed"] and (v.get("usedBy") or {}).get("usedDateUtc")}
    moved = {voucher_id: used[voucher_id] for voucher_id in records["moved_used"]}
    # the moves reach both sides of both month ends, and UTC would say otherwise for some
    assert {d.month for d in moved.values()} == {10, 11}
    assert any(local_date(i, "UTC") != local_date(i) for i in USED_AT)
    assert dict(rows(pipeline, "select voucher_id, used_on from {ds}.voucher_status where used_on is not null")) == used
    months = Counter(day.replace(day=1) for day in used.values())
    got = rows(pipeline, "select used_month, vouchers_used from {ds}.redemptions_by_month order by used_month")
    assert {m: n for m, n in got if n} == dict(months)
    assert got[-1][0] == AS_OF.replace(day=1), "December (UTC) has no use in New York: the last month is the as-of one"


@pytest.mark.parametrize("engine", ENGINES)
def test_purchase_dates_are_new_york_dates(
    engine: str, records: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    pipeline = request.getfixturevalue(engine)
    want = {p["id"]: local_date(p["purchaseDateUtc"]) for p in records["purchases"]}
    assert want[records["moved_purchase"]] == dt.date(2026, 10, 31)
    assert dict(rows(pipeline, "select purchase_id, purchased_on from {ds}.voucher_utilization")) == want


def status_in_new_york(voucher: dict[str, Any]) -> str:
    """The voucher status rule (docs/marts.md) with the expiry date taken in New York."""
    if voucher["isUsed"]:
        return "used"
    if not voucher["isActive"]:
        return "deactivated"
    if local_date(voucher["expirationDateUtc"]) < AS_OF:
        return "expired_unused"
    if voucher.get("reservationStatus") == "Scheduled":
        return "reserved"
    return "assigned_unused" if voucher.get("recipientEmail") or voucher.get("assignedDateUtc") else "unassigned"


@pytest.mark.parametrize("engine", ENGINES)
def test_expiry_dates_months_and_statuses_follow_new_york(
    engine: str, records: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    pipeline = request.getfixturevalue(engine)
    want = {v["id"]: (status_in_new_york(v), local_date(v["expirationDateUtc"]),
                      (local_date(v["expirationDateUtc"]) - AS_OF).days) for v in records["vouchers"]}
    got = {r[0]: r[1:] for r in rows(pipeline, "select voucher_id, voucher_status, expires_on, days_until_expiry "
                                               "from {ds}.voucher_status")}
    assert got == want
    # on its New York expiry date a voucher still has 0 days left and is redeemable; by UTC's date it has 1
    status, expires_on, days_left = got[records["moved_expiry"]]
    assert status in REDEEMABLE and (expires_on, days_left) == (AS_OF, 0)
    assert local_date(EXPIRES_AT, "UTC") == AS_OF + dt.timedelta(days=1)
    expiring = Counter(expires.replace(day=1) for status, expires, _ in want.values()
                       if status in (*REDEEMABLE, "expired_unused"))
    by_month = rows(pipeline, "select expiry_month, vouchers_expiring from {ds}.expiry_by_month")
    assert {m: n for m, n in by_month if n} == dict(expiring)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_headline_figures_name_the_zone_and_the_as_of_date(engine: str, request: pytest.FixtureRequest) -> None:
    pipeline = request.getfixturevalue(engine)
    assert rows(pipeline, "select as_of_date, reporting_timezone from {ds}.headline_figures") == [(AS_OF, ZONE)]


@pytest.mark.postgres
def test_duckdb_and_postgres_cut_the_same_new_york_dates(duckdb_new_york: Any, postgres_new_york: Any) -> None:
    for mart in ("redemptions_by_month", "expiry_by_month", "headline_figures", "idle_purchases"):
        sql = f"select * from {{ds}}.{mart}"
        assert sorted(rows(duckdb_new_york, sql)) == sorted(rows(postgres_new_york, sql)), mart


# -- the setting -----------------------------------------------------------------------------------


def test_the_setting_reaches_dbt_from_the_environment(
    duckdb_new_york: Any, records: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with duckdb_new_york.sql_client() as client:
        client.execute_sql("checkpoint")
        path = client.execute_sql("select file from pragma_database_list where name = current_database()")[0][0]
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(Path(path).read_bytes())
    monkeypatch.setenv("MARTS__TIMEZONE", "Asia/Tokyo")
    assert main(["transform", "--duckdb-file", str(copy), "--pipelines-dir", str(tmp_path / "pd"),
                 "--as-of", AS_OF.isoformat()]) == 0
    assert f"As of {AS_OF} (Asia/Tokyo)" in capsys.readouterr().out
    with duckdb.connect(str(copy), read_only=True) as con:
        assert con.execute("select reporting_timezone from certiverse.headline_figures").fetchall() == [("Asia/Tokyo",)]
        used = dict(con.execute("select voucher_id, used_on from certiverse.voucher_status").fetchall())
    moved, instant = records["moved_used"][1], USED_AT[1]
    assert used[moved] == local_date(instant, "Asia/Tokyo") != local_date(instant)


def test_a_time_zone_that_is_none_stops_before_dbt_with_a_configuration_error(
    duckdb_new_york: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MARTS__TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(ConfigurationError, match="Mars/Olympus_Mons"):
        reporting_timezone(RunContext.from_config("duckdb", str(tmp_path / "none.duckdb"),
                                                  pipelines_dir=str(tmp_path / "pd")).timezone)
    code = main(["transform", "--duckdb-file", str(tmp_path / "none.duckdb"), "--pipelines-dir", str(tmp_path / "pd")])
    assert code == EXIT_CONFIG and "MARTS__TIMEZONE" in capsys.readouterr().err
    assert not (tmp_path / "none.duckdb").exists()


def test_utc_is_the_default_and_the_run_passes_the_zone_as_a_dbt_var(
    duckdb_new_york: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MARTS__TIMEZONE", raising=False)
    context = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "pd"))
    assert reporting_timezone(context.timezone) == "UTC"
    monkeypatch.setenv("MARTS__TIMEZONE", ZONE)
    context = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "pd"))
    assert context.timezone == ZONE
    assert runner.dbt_vars(context, reporting_timezone(context.timezone)) == {
        "certiverse_timezone": ZONE, "certiverse_schema": context.warehouse.dataset}


def test_the_default_as_of_date_is_the_apis_date_in_the_zone(
    duckdb_new_york: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the API's clock read 23:30 EDT on 31 October: in UTC that is already 1 November
    monkeypatch.setattr(runner, "resource_state", lambda state: {"read_at": "2026-11-01T03:30:00+00:00"})
    with duckdb_new_york.sql_client() as client:
        assert api_date(client, duckdb_new_york.pipeline_name, ZONE) == dt.date(2026, 10, 31)
        assert api_date(client, duckdb_new_york.pipeline_name, "UTC") == dt.date(2026, 11, 1)
