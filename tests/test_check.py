"""`certiverse check`: configuration, one API request and the warehouse opened for writing, loading nothing, with
the exit codes `run` would end with."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import duckdb
import pytest

from certiverse_warehouse.pipelines.cli import (
    EXIT_API,
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_DESTINATION,
    EXIT_OK,
    main,
)
from tests.webhooks import recording_webhook

TOKEN = "tok-5d2c0e9b7a3f4418"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def warehouse_args(path: Path, pipelines: Path) -> list[str]:
    return ["--duckdb-file", str(path), "--pipelines-dir", str(pipelines)]


def relations(path: Path) -> dict[str, int]:
    """Every table of the DuckDB file with its row count."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = con.execute("select table_schema, table_name from information_schema.tables").fetchall()
        return {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}"').fetchone()[0] for s, t in names}


def test_check_on_a_new_warehouse_passes_and_creates_nothing(small_tenant_template, simulator, tmp_path,
                                                             monkeypatch, capsys):
    target = tmp_path / "w.duckdb"
    with simulator(small_tenant_template, token=TOKEN) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", TOKEN)
        code = main(["check", "--base-url", url, *warehouse_args(target, tmp_path / "p")])
        requests = sum(app.stats.values())
    out = capsys.readouterr().out.splitlines()
    assert code == EXIT_OK
    assert [line.split(":")[0].split() for line in out[:3]] == [["OK", "configuration"], ["OK", "api"],
                                                               ["OK", "warehouse"]]
    programs_on_first_page = min(len(small_tenant_template.records("programs")), app.page_size)
    assert f"answered {programs_on_first_page} program(s) on its first page" in out[1]
    assert f"{target} does not exist yet" in out[2] and out[-1] == "All checks passed; nothing was loaded."
    assert requests == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # no warehouse, no scratch file left


def test_check_on_a_loaded_warehouse_opens_it_for_writing_and_changes_nothing(small_tenant_template, simulator,
                                                                             tmp_path, monkeypatch, capsys):
    target = tmp_path / "w.duckdb"
    with simulator(small_tenant_template, token=TOKEN) as (_, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", TOKEN)
        assert main(["load", "--base-url", url, *warehouse_args(target, tmp_path / "p")]) == EXIT_OK
        before = relations(target)
        capsys.readouterr()
        code = main(["check", "--json", "--base-url", url, *warehouse_args(target, tmp_path / "p")])
    report = json.loads(capsys.readouterr().out)
    assert code == EXIT_OK and report["ok"] and report["exit_code"] == EXIT_OK
    checks = {c["name"]: c for c in report["checks"]}
    assert [c["status"] for c in report["checks"]] == ["ok", "ok", "ok"]
    assert checks["warehouse"]["exists"] is True and "opened for writing" in checks["warehouse"]["detail"]
    assert checks["api"]["programs_on_first_page"] > 0 and checks["configuration"]["warehouse"] == str(target)
    assert relations(target) == before
    assert TOKEN not in json.dumps(report)


def _failure(case: str, tmp_path: Path, url: str, monkeypatch) -> list[str]:
    """The options (and environment) of one way to fail; each is also how `run` fails."""
    monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", TOKEN)
    monkeypatch.setenv("SOURCES__CERTIVERSE__RETRY_BUDGET", "0")
    good = warehouse_args(tmp_path / "w.duckdb", tmp_path / "p")
    if case == "base URL with a path":
        return ["--base-url", url + "/api/vouchers", *good]
    if case == "no token":
        monkeypatch.delenv("SOURCES__CERTIVERSE__API_TOKEN")
        return ["--base-url", url, *good]
    if case == "token refused":
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", "not-" + TOKEN)
        return ["--base-url", url, *good]
    if case == "API unreachable":
        return ["--base-url", f"http://127.0.0.1:{closed_port()}", *good]
    if case == "folder missing":
        return ["--base-url", url, *warehouse_args(tmp_path / "gone" / "w.duckdb", tmp_path / "p")]
    if case == "Postgres unreachable":
        dsn = f"postgresql://u:pw-secret@127.0.0.1:{closed_port()}/w"
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", dsn)
        return ["--base-url", url, "--destination", "postgres", "--pipelines-dir", str(tmp_path / "p")]
    raise AssertionError(case)


@pytest.mark.parametrize("case, expected", [
    ("base URL with a path", EXIT_CONFIG),
    ("no token", EXIT_AUTH),
    ("token refused", EXIT_AUTH),
    ("API unreachable", EXIT_API),
    ("folder missing", EXIT_DESTINATION),
    ("Postgres unreachable", EXIT_DESTINATION),
])
def test_check_fails_with_the_code_run_ends_with(case, expected, small_tenant_template, simulator, tmp_path,
                                                 monkeypatch, capsys):
    with simulator(small_tenant_template, token=TOKEN) as (_, url):
        options = _failure(case, tmp_path, url, monkeypatch)
        checked = main(["check", *options])
        out = capsys.readouterr().out
        ran = main(["run", *options])
    assert checked == ran == expected
    assert f"(exit {expected})" in out
    assert out.splitlines()[-1] == f"A check failed: exit {expected}; nothing was loaded."
    assert "pw-secret" not in out and TOKEN not in out


def test_a_locked_duckdb_file_fails_the_check_like_a_run(small_tenant_template, simulator, tmp_path, monkeypatch,
                                                         capsys):
    target = tmp_path / "w.duckdb"
    duckdb.connect(str(target)).close()
    with simulator(small_tenant_template, token=TOKEN) as (_, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", TOKEN)
        options = ["--base-url", url, "--lock-timeout", "0", *warehouse_args(target, tmp_path / "p")]
        # another process holds the file (DuckDB locks across processes, not within one)
        import subprocess
        import sys

        holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(target)!r}); "
                                   "print('held', flush=True); sys.stdin.read()"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            checked = main(["check", *options])
            out = capsys.readouterr().out
            ran = main(["run", *options])
        finally:
            holder.communicate(input="", timeout=30)
    assert checked == ran == EXIT_DESTINATION
    assert f"is locked by PID {holder.pid}" in out


def test_a_failed_check_is_sent_to_the_webhook_once(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", TOKEN)
    with recording_webhook() as (url, received):
        monkeypatch.setenv("NOTIFICATIONS__WEBHOOK_URL", url)
        code = main(["check", "--base-url", f"http://127.0.0.1:9/{TOKEN}",
                     *warehouse_args(tmp_path / "w.duckdb", tmp_path / "p")])
    assert code == EXIT_CONFIG
    [raw] = received.raw
    assert TOKEN.encode() not in raw
    facts = json.loads(raw)["certiverse"]
    assert (facts["event"], facts["command"], facts["exit_code"]) == ("command_failed", "check", EXIT_CONFIG)
    assert "configuration check failed: the base URL is the API root" in facts["figures"]["message"]
    assert capsys.readouterr().out.startswith("FAILED  configuration (exit 2): the base URL is the API root")


@pytest.mark.postgres
def test_check_on_postgres_logs_in_and_creates_nothing(postgres_server, small_tenant_template, simulator, tmp_path,
                                                       monkeypatch, capsys):
    import psycopg2

    dsn = postgres_server.create_database("certiverse_check")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", dsn)
    with simulator(small_tenant_template, token=TOKEN) as (_, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", TOKEN)
        code = main(["check", "--base-url", url, "--destination", "postgres", "--pipelines-dir", str(tmp_path / "p")])
    out = capsys.readouterr().out
    assert code == EXIT_OK, out
    assert "opened for writing: dataset certiverse created if missing" in out
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("select count(*) from information_schema.schemata where schema_name = 'certiverse'")
        assert cursor.fetchone()[0] == 0  # rolled back: the first run creates it
