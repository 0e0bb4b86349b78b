"""The `certiverse` command as a user runs it: demo, load, exit codes, help."""

from __future__ import annotations

import datetime as dt
import decimal

import duckdb
import pytest

from certiverse_warehouse.pipelines.cli import EXIT_API, EXIT_AUTH, build_parser, main
from certiverse_warehouse.simulator import Tenant
from tests.helpers import RESOURCES


def distinct_ids(duckdb_file: str, table: str) -> set[str]:
    with duckdb.connect(duckdb_file, read_only=True) as con:
        return {r[0] for r in con.execute(f"select distinct id from certiverse.{table}").fetchall()}


def test_demo_loads_the_simulated_tenant_into_a_file_here_and_prints_a_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--size", "small"]) == 0
    out = capsys.readouterr().out
    tenant = Tenant.generate("small", seed=42)
    for table in RESOURCES:
        assert distinct_ids(str(tmp_path / "certiverse_demo.duckdb"), table) == {r["id"] for r in tenant.records(table)}
    vouchers = len(tenant.records("vouchers"))
    used = sum(1 for v in tenant.records("vouchers") if v["isUsed"])
    purchases = len(tenant.records("purchases"))
    assert f"{vouchers:,} vouchers on {purchases:,} purchases; {used:,} used" in out
    assert "API requests:" in out and "\nPhases: startup " in out and " dbt models " in out


def test_load_takes_the_api_from_environment_variables(small_tenant_template, simulator, tmp_path, monkeypatch):
    duckdb_file = str(tmp_path / "w.duckdb")
    with simulator(small_tenant_template) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__BASE_URL", url)
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", duckdb_file)
        assert main(["load", "--pipelines-dir", str(tmp_path / "p")]) == 0
    for table in RESOURCES:
        assert distinct_ids(duckdb_file, table) == {r["id"] for r in small_tenant_template.records(table)}


def test_a_refused_token_exits_with_the_auth_code_and_never_prints_the_token(
    small_tenant_template, simulator, tmp_path, monkeypatch, capsys
):
    wrong = "not-the-right-token-123"
    with simulator(small_tenant_template) as (_, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", wrong)
        code = main(["load", "--base-url", url, "--duckdb-file", str(tmp_path / "w.duckdb"),
                     "--pipelines-dir", str(tmp_path / "p")])
    captured = capsys.readouterr()
    assert code == EXIT_AUTH
    assert "refused the token" in captured.err
    assert wrong not in captured.err + captured.out


def test_an_unreachable_api_exits_with_the_api_code(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", "t")
    monkeypatch.setenv("SOURCES__CERTIVERSE__RETRY_BUDGET", "1")
    monkeypatch.setenv("SOURCES__CERTIVERSE__RETRY_BACKOFF", "0.01")
    code = main(["load", "--base-url", "http://127.0.0.1:9", "--duckdb-file", str(tmp_path / "w.duckdb"),
                 "--pipelines-dir", str(tmp_path / "p")])
    assert code == EXIT_API
    assert "giving up after 1s of retries" in capsys.readouterr().err


@pytest.mark.parametrize("command", sorted(build_parser()._subparsers._group_actions[0].choices))
def test_help_explains_each_command(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: certiverse {command}" in text and len(text.splitlines()) > 4


def test_load_with_no_destination_settings_writes_warehouse_duckdb_here(
    small_tenant_template, simulator, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DESTINATION__DUCKDB__CREDENTIALS", raising=False)
    with simulator(small_tenant_template) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        assert main(["load", "--base-url", url, "--pipelines-dir", str(tmp_path / "p")]) == 0
    assert distinct_ids(str(tmp_path / "warehouse.duckdb"), "vouchers") == {
        v["id"] for v in small_tenant_template.records("vouchers")
    }


def test_run_loads_builds_the_marts_and_reports_json(small_tenant_template, simulator, tmp_path, monkeypatch,
                                                     capsys):
    import json

    with simulator(small_tenant_template) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        code = main(["run", "--json", "--base-url", url, "--as-of", small_tenant_template.today.isoformat(),
                     "--duckdb-file", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p")])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"]["vouchers"] == len(small_tenant_template.records("vouchers"))
    assert summary["requests"]["vouchers"]["200"] > 0
    assert "voucher_utilization" in summary["dbt"]["model_seconds"]
    # the headline figures are the row of the mart headline_figures, column for column (JSON numbers for
    # decimals, YYYY-MM-DD for the date)
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        cursor = con.execute("select * from certiverse.headline_figures")
        [row] = cursor.fetchall()
        mart = dict(zip([d[0] for d in cursor.description], row))
    in_json = {name: float(value) if isinstance(value, decimal.Decimal) else
               value.isoformat() if isinstance(value, dt.date) else value for name, value in mart.items()}
    assert summary["headlines"] == in_json and mart["vouchers_issued"] > 0


def test_simulate_serves_the_api_on_loopback(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "certiverse_warehouse.pipelines.cli", "simulate", "--size", "small", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/vouchers/partners",
                                   headers={"Authorization": "Bearer sim-token"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "simulator did not come up"
                time.sleep(0.2)
        assert answer.status_code == 200
        assert len(answer.json()["data"]) == len(Tenant.generate("small", seed=42).records("partners"))
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_load_full_refresh_rereads_everything_after_a_first_load(small_tenant_template, simulator, tmp_path,
                                                                   monkeypatch, capsys):
    import json

    args = ["--duckdb-file", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p"), "--json"]
    # Small pages and a low cap make a nightly read cheaper than a full one on the small tenant.
    monkeypatch.setenv("SOURCES__CERTIVERSE__RECORD_CAP", "400")
    with simulator(small_tenant_template, cap=400, page_size=20) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        assert main(["load", "--base-url", url, *args]) == 0
        capsys.readouterr()
        assert main(["load", "--base-url", url, *args]) == 0
        assert json.loads(capsys.readouterr().out)["mode"].startswith("nightly read")
        assert main(["load", "--full-refresh", "--base-url", url, *args]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["mode"] == "full read"
    assert summary["read"]["vouchers"] == len(small_tenant_template.records("vouchers"))


def test_run_judges_the_marts_by_the_apis_date_not_this_machines(small_tenant_template, simulator, tmp_path,
                                                                  monkeypatch):
    import datetime as dt

    assert small_tenant_template.today != dt.datetime.now(dt.timezone.utc).date()  # the simulator's own clock
    duckdb_file = str(tmp_path / "w.duckdb")
    with simulator(small_tenant_template) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        assert main(["run", "--base-url", url, "--duckdb-file", duckdb_file, "--pipelines-dir",
                     str(tmp_path / "p")]) == 0
    with duckdb.connect(duckdb_file, read_only=True) as con:
        built_for = con.execute("select distinct as_of_date from certiverse.voucher_status").fetchall()
    assert built_for == [(small_tenant_template.today,)]
