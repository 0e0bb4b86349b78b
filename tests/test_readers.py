"""Readers beside the loader: the published copy, held connections, older DuckDB clients, locked files."""

from __future__ import annotations

import decimal
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pandas
import pyarrow
import pyarrow.parquet
import pytest

from certiverse_warehouse.pipelines.cli import EXIT_DESTINATION, EXIT_OK, main
from tests.readers import HeldConnection, old_client

ROOT = Path(__file__).resolve().parent.parent
# What a reader sees: how many current vouchers, a fingerprint of their versions, and a mart built from them.
SNAPSHOT = ("select (select count(*) from vouchers), (select sum(hash(id || content_hash)) from vouchers), "
            "(select count(*) from voucher_status), (select sum(vouchers_used) from program_utilization)")


def run_args(url: str, workdir: Path, tenant, *extra: str) -> list[str]:
    return ["run", "--base-url", url, "--duckdb-file", str(workdir / "warehouse.duckdb"),
            "--pipelines-dir", str(workdir / "p"), "--as-of", tenant.today.isoformat(), *extra]


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", "sim-token")


@pytest.fixture(scope="module")
def published(tmp_path_factory, small_tenant_template):
    """A warehouse.duckdb loaded from the small tenant, with its published copy beside it (cwd-relative names)."""
    from certiverse_warehouse.simulator import SimulatorApp, serve

    workdir = tmp_path_factory.mktemp("published")
    app = SimulatorApp(small_tenant_template)
    with pytest.MonkeyPatch.context() as patch, serve(app) as url:
        patch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        assert main(run_args(url, workdir, small_tenant_template)) == EXIT_OK
    return workdir


@pytest.fixture(scope="session")
def old_duckdb() -> Path:
    """bin/ of a virtual environment with DuckDB 1.4 (Python and CLI), installed from the package registry."""
    return old_client()


def published_relations(path: Path) -> dict[str, int]:
    """Rows per relation of a published DuckDB file, read with this process's DuckDB."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = con.execute("select relations from publication").fetchone()[0].split(",")
        return {name: con.execute(f'select count(*) from "{name}"').fetchone()[0] for name in names}


def test_a_reader_holding_the_published_copy_keeps_its_snapshot_through_two_runs(small_tenant, simulator, tmp_path,
                                                                                 token):
    copy = tmp_path / "warehouse_published.duckdb"
    with simulator(small_tenant) as (_, url):
        assert main(run_args(url, tmp_path, small_tenant)) == EXIT_OK
        with HeldConnection(copy) as held:
            before = held.query(SNAPSHOT)
            assert main(run_args(url, tmp_path, small_tenant)) == EXIT_OK
            activity = small_tenant.advance_day()
            assert main(run_args(url, tmp_path, small_tenant)) == EXIT_OK
            # The old file stays whole for the connection that holds it: every relation as of run one.
            assert held.query(SNAPSHOT) == before
    assert activity["vouchers_used"] and activity["vouchers_created"]
    with HeldConnection(copy) as fresh:
        after = fresh.query(SNAPSHOT)
    with HeldConnection(tmp_path / "warehouse.duckdb") as working:
        expected = working.query(
            "select (select count(*) from certiverse.vouchers where _dlt_valid_to is null), "
            "(select sum(hash(id || content_hash)) from certiverse.vouchers where _dlt_valid_to is null), "
            "(select count(*) from certiverse.voucher_status), "
            "(select sum(vouchers_used) from certiverse.program_utilization)")
    assert after == expected and after != before
    assert before[0][0] == before[0][2]  # vouchers and the mart built from them come from the same run


def test_published_copy_holds_marts_current_state_and_history(published):
    counts = published_relations(published / "warehouse_published.duckdb")
    with duckdb.connect(str(published / "warehouse.duckdb"), read_only=True) as con:
        raw = {name: con.execute(f"select count(*) from certiverse.{name}").fetchone()[0]
               for (name,) in con.execute("select table_name from information_schema.tables where "
                                          "table_schema = 'certiverse' and table_type = 'BASE TABLE' "
                                          "and table_name not like '\\_%' escape '\\'").fetchall()}
        current = con.execute("select count(*) from certiverse.vouchers where _dlt_valid_to is null").fetchone()[0]
    assert counts["voucher_history"] == raw["vouchers"] and counts["vouchers"] == current
    assert {n: c for n, c in counts.items() if n not in ("vouchers", "voucher_history")} == {
        n: c for n, c in raw.items() if n != "vouchers"}
    assert {"voucher_utilization", "voucher_expiry", "partners__users", "programs__store_exams"} <= counts.keys()
    # every mart is published (the dbt exposure published_copy lists them)
    marts = {p.stem for p in (ROOT / "transforms" / "models" / "marts").glob("*.sql")}
    assert {"headline_figures", "idle_purchases", "redemptions_by_month", "expiry_by_month"} <= marts <= counts.keys()


def test_duckdb_14_opens_every_published_relation(published, old_duckdb):
    script = ("import duckdb, json, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
              "names = con.execute('select relations from publication').fetchone()[0].split(','); "
              "print(json.dumps({'version': duckdb.__version__, "
              "'counts': {n: con.execute(f'select count(*) from \"{n}\"').fetchone()[0] for n in names}}))")
    done = subprocess.run([str(old_duckdb / "python"), "-c", script, str(published / "warehouse_published.duckdb")],
                          capture_output=True, text=True, check=True)
    answer = json.loads(done.stdout)
    assert answer["version"].startswith("1.4.")
    assert answer["counts"] == published_relations(published / "warehouse_published.duckdb")


def test_parquet_files_hold_the_same_relations_for_old_clients_and_pyarrow(published, old_duckdb):
    expected = published_relations(published / "warehouse_published.duckdb")
    folder = published / "warehouse_parquet"
    assert folder.is_symlink() and {p.stem for p in folder.iterdir()} == {*expected, "publication"}
    # pyarrow, not pandas.read_parquet: that one sometimes aborts the process on exit (docs/analysts.md).
    assert {name: pyarrow.parquet.read_table(folder / f"{name}.parquet").num_rows for name in expected} == expected
    script = ("import duckdb, json, sys, pathlib; "
              "print(json.dumps({p.stem: duckdb.sql(f\"select count(*) from read_parquet('{p}')\").fetchall()[0][0] "
              "for p in pathlib.Path(sys.argv[1]).glob('*.parquet') if p.stem != 'publication'}))")
    done = subprocess.run([str(old_duckdb / "python"), "-c", script, str(folder)], capture_output=True, text=True,
                          check=True)
    assert json.loads(done.stdout) == expected


def test_status_names_the_published_paths_and_when_they_were_written(published, capsys):
    code = main(["status", "--json", "--duckdb-file", str(published / "warehouse.duckdb"),
                 "--pipelines-dir", str(published / "p")])
    assert code == EXIT_OK
    status = json.loads(capsys.readouterr().out)
    assert status["published"]["duckdb_file"] == str(published / "warehouse_published.duckdb")
    assert status["published"]["parquet_dir"] == str(published / "warehouse_parquet")
    with duckdb.connect(str(published / "warehouse_published.duckdb"), read_only=True) as con:
        written = con.execute("select published_at from publication").fetchone()[0]
        cursor = con.execute("select * from headline_figures")
        [row] = cursor.fetchall()
        figures = dict(zip([d[0] for d in cursor.description], row))
    assert status["published"]["published_at"] == written.isoformat()
    # the marts' figures, as the mart holds them
    assert status["marts"]["as_of_date"] == figures["as_of_date"].isoformat()
    assert {k: v for k, v in status["marts"].items() if isinstance(v, int)} == {
        k: v for k, v in figures.items() if isinstance(v, int)}
    assert status["marts"]["value_expired_unused"] == float(figures["value_expired_unused"])


def doc_section(page: str, title: str) -> list[tuple[str, str]]:
    """The fenced code blocks (language, code) of one section (``## title``) of a page of the repository."""
    text = (ROOT / page).read_text()
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, re.DOTALL)


def test_the_readme_quickstart_query_runs_on_a_published_copy(published, tmp_path):
    """The one-liner after `make demo`, as written: run from a folder with .venv and the demo's published copy."""
    [query] = [line for lang, code in doc_section("README.md", "Quickstart") if lang == "sh"
               for line in code.splitlines() if "duckdb.connect" in line]
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "certiverse_demo_published.duckdb").symlink_to(published / "warehouse_published.duckdb")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", query], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, f"{query}\n{done.stderr}"
    with duckdb.connect(str(published / "warehouse_published.duckdb"), read_only=True) as con:
        statuses = [status for (status,) in con.execute("select distinct status from purchases").fetchall()]
    assert statuses and all(status in done.stdout for status in statuses), done.stdout


def test_the_readers_examples_of_the_analysts_page_work_with_the_current_and_an_old_client(published, old_duckdb):
    blocks = doc_section("docs/analysts.md", "Opening the published copy")
    assert {lang for lang, _ in blocks} >= {"sh", "python"}
    current = str(ROOT / ".venv" / "bin")
    for bin_dir in (old_duckdb, Path(current)):
        for lang, code in blocks:
            if lang == "sh" and not (bin_dir / "duckdb").exists():
                continue  # the DuckDB CLI lives in the old client's environment only
            python = str(bin_dir / "python")
            command = ["bash", "-euo", "pipefail", "-c", code] if lang == "sh" else [python, "-c", code]
            done = subprocess.run(command, cwd=published, capture_output=True, text=True,
                                  env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(published)})
            assert done.returncode == 0, f"{lang} block with {bin_dir}:\n{code}\n{done.stderr}"
            assert done.stdout.strip(), code


def test_a_run_waits_for_a_locked_working_file_then_exits_5_naming_the_holder(published, small_tenant_template,
                                                                               simulator, token, capsys):
    with simulator(small_tenant_template) as (_, url), HeldConnection(published / "warehouse.duckdb") as holder:
        code = main(run_args(url, published, small_tenant_template, "--lock-timeout", "2"))
    err = capsys.readouterr().err
    assert code == EXIT_DESTINATION
    assert "waiting for the DuckDB file" in err
    assert f"PID {holder.pid}" in err and "published copy" in err
    assert str(published / "warehouse_published.duckdb") in err


def test_a_run_goes_on_when_the_lock_is_released_within_the_wait(published, small_tenant_template, simulator,
                                                                   token, capsys):
    with simulator(small_tenant_template) as (_, url):
        holder = HeldConnection(published / "warehouse.duckdb")
        threading.Timer(2.0, holder.close).start()
        code = main(run_args(url, published, small_tenant_template, "--lock-timeout", "60"))
    assert code == EXIT_OK
    assert "waiting for the DuckDB file" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["transform", "status", "report"])
def test_other_commands_wait_for_a_writer_then_explain(published, command, capsys):
    args = [command, "--duckdb-file", str(published / "warehouse.duckdb"), "--pipelines-dir", str(published / "p"),
            "--lock-timeout", "1"]
    if command == "report":
        args += ["--output", str(published / "report.html")]
    with HeldConnection(published / "warehouse.duckdb", read_only=False) as holder:
        code = main(args)
    err = capsys.readouterr().err
    assert code == EXIT_DESTINATION
    assert f"PID {holder.pid}" in err and "waiting for the DuckDB file" in err


def test_status_and_report_read_beside_another_reader(published, capsys):
    with HeldConnection(published / "warehouse.duckdb", read_only=True):
        assert main(["status", "--duckdb-file", str(published / "warehouse.duckdb"),
                     "--pipelines-dir", str(published / "p"), "--lock-timeout", "0"]) == EXIT_OK
        assert main(["report", "--duckdb-file", str(published / "warehouse.duckdb"), "--pipelines-dir",
                     str(published / "p"), "--lock-timeout", "0", "--output", str(published / "r.html")]) == EXIT_OK
    assert "waiting" not in capsys.readouterr().err


def test_mart_reads_the_published_copy_as_the_working_warehouse_has_it(published):
    from certiverse_warehouse.pipelines.reporting.frames import mart

    copy = mart("program_utilization", str(published / "warehouse_published.duckdb"))
    working = mart("program_utilization", str(published / "warehouse.duckdb"))
    assert len(copy) > 0
    pandas.testing.assert_frame_equal(copy, working)


def test_money_has_one_type_for_every_reader(published):
    """Decimal in DuckDB, in the Parquet files, and in pandas from both: never a float."""
    from certiverse_warehouse.pipelines.reporting.frames import mart

    folder = published / "warehouse_parquet"
    marts = sorted(p.stem for p in (ROOT / "transforms" / "models" / "marts").glob("*.sql"))
    with duckdb.connect(str(published / "warehouse_published.duckdb"), read_only=True) as con:
        types = dict(con.execute("select table_name || '.' || column_name, data_type from information_schema.columns "
                                 "where table_schema = 'main' and column_name <> 'value_basis' "
                                 "and (column_name like 'value%' or column_name like 'amount%')"
                                 ).fetchall())
    money = {name: kind for name, kind in types.items() if name.split(".")[0] in marts}
    assert money and set(money.values()) <= {"DECIMAL(18,2)", "DECIMAL(18,4)"}, money
    for name in marts:
        frame = mart(name, str(published / "warehouse_published.duckdb"))
        from_parquet = pyarrow.parquet.read_table(folder / f"{name}.parquet").to_pandas()
        pandas.testing.assert_series_equal(frame.dtypes, from_parquet.dtypes, obj=name)
        for column in (c for c in frame.columns if f"{name}.{c}" in money):
            assert pyarrow.parquet.read_schema(folder / f"{name}.parquet").field(column).type.id == pyarrow.decimal128(
                18, 2).id, f"{name}.{column} is not a decimal in Parquet"
            values = [v for v in frame[column] if v is not None]
            assert values and {type(v) for v in values} == {decimal.Decimal}, f"{name}.{column}"
            assert list(frame[column]) == list(from_parquet[column]), f"{name}.{column}"


def test_the_money_examples_of_the_analysts_page_run_on_the_published_copy(published):
    blocks = [code for lang, code in doc_section("docs/analysts.md", "Money") if lang == "python"]
    assert len(blocks) >= 2
    for code in blocks:
        done = subprocess.run([sys.executable, "-c", code], cwd=published,
                              capture_output=True, text=True)
        assert done.returncode == 0, f"{code}\n{done.stderr}"
        assert "Decimal" in done.stdout or "redeemable value" in done.stdout, done.stdout
