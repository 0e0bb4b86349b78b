"""The warehouse, not dlt's local state, says what was loaded: deleted, new and restored warehouses."""

from __future__ import annotations

import shutil

import pytest

from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.sources.certiverse import RunInputs, certiverse_source
from tests.helpers import RESOURCES, differences

# As in the nightly tests: a cap and a page size under which the small tenant plans like a big one.
CAP, PAGE = 400, 20


def load(pipeline, app, url, tenant, **kwargs):
    return run_load(pipeline, {"base_url": url, "api_token": app.token, "record_cap": CAP}, as_of=tenant.now(),
                    **kwargs)


def leave_a_package_pending(pipeline, app, url, tenant) -> None:
    """What a crash after the extract leaves: a package of tonight's changes that no load took."""
    source = certiverse_source(base_url=url, api_token=app.token, record_cap=CAP)
    source.vouchers.bind(RunInputs(as_of=tenant.now()))
    pipeline.pipeline.extract(source)
    assert pipeline.pipeline.has_pending_data


def assert_equals_the_api(pipeline, tenant) -> None:
    for resource in RESOURCES:
        assert differences(pipeline, resource, tenant.records(resource)) == [], resource


def test_a_deleted_warehouse_is_read_again_whole_though_local_state_remains(small_tenant, simulator, tmp_path):
    duckdb_file = tmp_path / "w.duckdb"
    pipeline = RunContext.from_config("duckdb", str(duckdb_file), pipelines_dir=str(tmp_path / "p"))
    with simulator(small_tenant, cap=CAP, page_size=PAGE) as (app, url):
        load(pipeline, app, url, small_tenant)
        small_tenant.advance_day()
        load(pipeline, app, url, small_tenant)
        duckdb_file.unlink()
        result = load(RunContext.from_config("duckdb", str(duckdb_file), pipelines_dir=str(tmp_path / "p")), app, url,
                      small_tenant)
    assert result.full_read_reason and "no earlier load" in result.full_read_reason
    assert_equals_the_api(pipeline, small_tenant)


def test_an_empty_warehouse_with_the_dataset_schema_but_no_tables_is_read_again_whole(small_tenant, simulator,
                                                                                        tmp_path):
    import duckdb

    duckdb_file = tmp_path / "w.duckdb"
    pipeline = RunContext.from_config("duckdb", str(duckdb_file), pipelines_dir=str(tmp_path / "p"))
    with simulator(small_tenant, cap=CAP, page_size=PAGE) as (app, url):
        load(pipeline, app, url, small_tenant)
        small_tenant.advance_day()
        # Left pending by a crash: dlt's run() would load only this package and extract nothing.
        leave_a_package_pending(pipeline, app, url, small_tenant)
        duckdb_file.unlink()
        with duckdb.connect(str(duckdb_file)) as con:
            con.execute("create schema certiverse")  # the dataset exists, as in a database made ready by hand
        small_tenant.advance_day()
        result = load(RunContext.from_config("duckdb", str(duckdb_file), pipelines_dir=str(tmp_path / "p")), app, url,
                      small_tenant)
    assert "no earlier load" in result.full_read_reason
    assert_equals_the_api(pipeline, small_tenant)
    assert pipeline.pipeline.state["sources"]["certiverse"]["resources"]["vouchers"]["night"] == 0


def test_a_new_warehouse_file_gets_everything_though_the_pipeline_loaded_elsewhere(small_tenant, simulator, tmp_path):
    with simulator(small_tenant, cap=CAP, page_size=PAGE) as (app, url):
        old = RunContext.from_config("duckdb", str(tmp_path / "old.duckdb"), pipelines_dir=str(tmp_path / "p"))
        load(old, app, url, small_tenant)
        small_tenant.advance_day()
        other = RunContext.from_config("duckdb", str(tmp_path / "new.duckdb"), pipelines_dir=str(tmp_path / "p"))
        result = load(other, app, url, small_tenant)
    assert result.requests.records["vouchers"] >= len(small_tenant.records("vouchers"))
    assert_equals_the_api(other, small_tenant)


def test_a_warehouse_restored_from_an_older_backup_ends_exact(small_tenant, simulator, tmp_path):
    duckdb_file = tmp_path / "w.duckdb"
    backup = tmp_path / "backup.duckdb"
    pipeline = RunContext.from_config("duckdb", str(duckdb_file), pipelines_dir=str(tmp_path / "p"))
    with simulator(small_tenant, cap=CAP, page_size=PAGE) as (app, url):
        load(pipeline, app, url, small_tenant)
        shutil.copy(duckdb_file, backup)
        for _ in range(2):
            small_tenant.advance_day()
            load(pipeline, app, url, small_tenant)
        shutil.copy(backup, duckdb_file)
        small_tenant.advance_day()
        result = load(RunContext.from_config("duckdb", str(duckdb_file), pipelines_dir=str(tmp_path / "p")), app, url,
                      small_tenant)
    assert result.full_read_reason and "behind" in result.full_read_reason
    assert_equals_the_api(pipeline, small_tenant)
    state = pipeline.pipeline.state["sources"]["certiverse"]["resources"]["vouchers"]
    assert state["mode"] == "full" and state["night"] == 0


def test_pending_packages_of_a_deleted_warehouse_are_dropped_not_loaded_into_the_new_one(small_tenant, simulator,
                                                                                          tmp_path):
    duckdb_file = tmp_path / "w.duckdb"
    pipeline = RunContext.from_config("duckdb", str(duckdb_file), pipelines_dir=str(tmp_path / "p"))
    with simulator(small_tenant, cap=CAP, page_size=PAGE) as (app, url):
        load(pipeline, app, url, small_tenant)
        small_tenant.advance_day()
        # A package of tonight's changes waits for a warehouse that then vanishes.
        leave_a_package_pending(pipeline, app, url, small_tenant)
        duckdb_file.unlink()
        result = load(pipeline, app, url, small_tenant)
    assert "no earlier load" in result.full_read_reason
    assert not pipeline.pipeline.has_pending_data
    assert_equals_the_api(pipeline, small_tenant)


def test_a_nightly_run_after_a_crash_finishes_the_pending_load_and_stays_nightly(small_tenant, simulator, tmp_path):
    pipeline = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=str(tmp_path / "p"))
    with simulator(small_tenant, cap=CAP, page_size=PAGE) as (app, url):
        load(pipeline, app, url, small_tenant)
        leave_a_package_pending(pipeline, app, url, small_tenant)
        result = load(pipeline, app, url, small_tenant)
    # A pending package explains the local state being one version ahead: nothing was lost.
    assert result.full_read_reason is None
    assert pipeline.pipeline.state["sources"]["certiverse"]["resources"]["vouchers"]["mode"] == "nightly"


@pytest.mark.postgres
def test_an_emptied_postgres_warehouse_is_read_again_whole(small_tenant, simulator, postgres_server, tmp_path):
    import psycopg2

    dsn = postgres_server.create_database("truth_emptied")
    pipeline = RunContext.from_config("postgres", dsn, pipelines_dir=str(tmp_path / "p"))
    with simulator(small_tenant, cap=CAP, page_size=PAGE) as (app, url):
        load(pipeline, app, url, small_tenant)
        with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
            cursor.execute("drop schema certiverse cascade")
        small_tenant.advance_day()
        result = load(pipeline, app, url, small_tenant)
    assert "no earlier load" in result.full_read_reason
    for resource in ("partners", "programs"):
        assert differences(pipeline, resource, small_tenant.records(resource)) == []
    # Postgres COPY loads an empty string as NULL (NOTES.md); nothing else may differ.
    problems = differences(pipeline, "purchases", small_tenant.records("purchases"), limit=10_000)
    assert all(p.endswith("notes: api='' warehouse=None") for p in problems), problems[:3]
    assert differences(pipeline, "vouchers", small_tenant.records("vouchers")) == []
