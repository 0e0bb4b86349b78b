"""Exit codes are a contract: every row of the table (pipelines/cli/codes.py, README.md) is pinned
here by a failure a user meets, with and without -v: -v adds detail, never another code."""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import duckdb
import httpx
import pytest
import respx

from certiverse_warehouse.pipelines.cli import (
    EXIT_API,
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_DESTINATION,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    EXIT_STALE,
    EXIT_TRANSFORM,
    build_parser,
    main,
)
from certiverse_warehouse.pipelines.cli.codes import EXIT_CODES
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load

covers = pytest.mark.covers
ROOT = Path(__file__).resolve().parent.parent
BASE = "https://tenant.example.test"
PG_PASSWORD = "pw-that-must-not-show"


def both_ways(capsys, argv: list[str]) -> tuple[int, str, str]:
    """Run the command without and with -v; the code must be the same. Returns (code, stderr, stderr with -v)."""
    code = main(argv)
    plain = capsys.readouterr().err
    verbose_code = main(["-v", *argv])
    verbose = capsys.readouterr().err
    assert verbose_code == code, f"-v changed the exit code from {code} to {verbose_code}"
    return code, plain, verbose


def one_error_line(err: str) -> str:
    """The one line a failure prints without -v, last on stderr (warnings logged before it aside), without dlt's
    boilerplate or a traceback."""
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and sum(line.startswith("error: ") for line in lines) == 1, err
    assert "internet connection" not in err and "configured the credentials at all" not in err
    assert "Traceback" not in err
    return lines[-1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def warehouse(tmp_path: Path, name: str = "w.duckdb") -> list[str]:
    return ["--duckdb-file", str(tmp_path / name), "--pipelines-dir", str(tmp_path / "p")]


@pytest.fixture
def no_api(monkeypatch):
    """A token, quick retries and an API on a closed port: a command that reaches the API fails fast."""
    monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", "tok")
    monkeypatch.setenv("SOURCES__CERTIVERSE__RETRY_BUDGET", "0")
    monkeypatch.setenv("SOURCES__CERTIVERSE__BASE_URL", f"http://127.0.0.1:{closed_port()}")


# -- 0 and 1 -------------------------------------------------------------------------------------


@covers(EXIT_OK)
def test_a_successful_load_exits_0_with_or_without_verbose(small_tenant_template, simulator, tmp_path, monkeypatch,
                                                          capsys):
    with simulator(small_tenant_template) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        code, _, _ = both_ways(capsys, ["load", "--base-url", url, *warehouse(tmp_path)])
    assert code == EXIT_OK


@covers(EXIT_FAILURE)
def test_only_an_unexpected_failure_exits_1_and_verbose_shows_its_traceback(tmp_path, monkeypatch, capsys):
    from certiverse_warehouse.pipelines.reporting import status

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(status, "pipeline_status", broken)
    code, plain, verbose = both_ways(capsys, ["status", *warehouse(tmp_path)])
    assert code == EXIT_FAILURE
    assert "ZeroDivisionError: a bug" in one_error_line(plain) and "report it" in plain
    assert "Traceback (most recent call last)" in verbose and "Traceback" not in plain


# -- 2 configuration ---------------------------------------------------------------------------


@covers(EXIT_CONFIG)
def test_a_setting_of_the_wrong_type_exits_2_naming_it(no_api, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOURCES__CERTIVERSE__WORKERS", "sixteen")
    code, plain, verbose = both_ways(capsys, ["load", *warehouse(tmp_path)])
    assert code == EXIT_CONFIG
    assert "workers" in one_error_line(plain)
    assert "Traceback" in verbose


@covers(EXIT_CONFIG)
def test_a_missing_base_url_exits_2_and_verbose_keeps_2_with_dlts_lookup_list(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SOURCES__CERTIVERSE__BASE_URL", raising=False)
    monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", "tok")
    monkeypatch.chdir(tmp_path)  # no .dlt/config.toml here that could name one
    code, plain, verbose = both_ways(capsys, ["load", *warehouse(tmp_path)])
    assert code == EXIT_CONFIG
    assert one_error_line(plain).startswith("error: no base URL")
    assert "Environment Variables" not in plain and "Environment Variables" in verbose


@covers(EXIT_CONFIG)
def test_a_purchase_refused_before_sending_exits_2_and_sends_nothing(small_tenant, simulator, monkeypatch, capsys):
    program = next(p["name"] for p in small_tenant.records("programs")
                   if p["isActive"] and not p["isArchived"] and p["partners"]["partnerCostPerVoucher"] > 0)
    partner = next(p["name"] for p in small_tenant.records("partners") if p["isActive"] and not p["isArchived"])
    with simulator(small_tenant) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        code, plain, _ = both_ways(capsys, ["purchase", "create", "--partner", partner, "--program", program,
                                            "--quantity", "5", "--notes", "x", "--base-url", url])
        posts = sum(n for (path, status), n in app.stats.items() if path == "/api/vouchers/purchases")
    assert code == EXIT_CONFIG
    assert "only $0 programs" in one_error_line(plain)
    assert posts == 0


# -- 3 token, 4 API ------------------------------------------------------------------------------


@covers(EXIT_AUTH)
def test_a_refused_token_exits_3(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", "expired-token")
    with respx.mock(assert_all_called=False) as api:
        api.get(url__startswith=BASE).mock(return_value=httpx.Response(401))
        code, plain, _ = both_ways(capsys, ["load", "--base-url", BASE, *warehouse(tmp_path)])
    assert code == EXIT_AUTH
    assert "refused the token (401)" in one_error_line(plain) and "expired-token" not in plain


@covers(EXIT_API)
def test_an_api_failing_after_its_retries_exits_4(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", "tok")
    monkeypatch.setenv("SOURCES__CERTIVERSE__RETRY_BUDGET", "0.2")
    monkeypatch.setenv("SOURCES__CERTIVERSE__RETRY_BACKOFF", "0.01")
    with respx.mock(assert_all_called=False) as api:
        api.get(url__startswith=BASE).mock(return_value=httpx.Response(503, text="down"))
        code, plain, _ = both_ways(capsys, ["load", "--base-url", BASE, *warehouse(tmp_path)])
    assert code == EXIT_API
    assert "giving up after 0.2s of retries (retry_budget)" in one_error_line(plain)


@covers(EXIT_API)
def test_a_documented_field_sent_with_another_type_exits_4(small_tenant, simulator, tmp_path, monkeypatch, capsys):
    documented = small_tenant.voucher_record

    def voucher(v: int) -> dict:
        record = documented(v)
        if v == 0:
            record["isUsed"] = "maybe"  # the reference says boolean; no reading by meaning fits this one
        return record

    monkeypatch.setattr(small_tenant, "voucher_record", voucher)
    with simulator(small_tenant) as (app, url):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", app.token)
        code = main(["load", "--base-url", url, *warehouse(tmp_path)])
    assert code == EXIT_API
    line = one_error_line(capsys.readouterr().err)
    assert "field isUsed = 'maybe' cannot be read as" in line and "before anything of this run is stored" in line


# -- 5 destination -------------------------------------------------------------------------------


@covers(EXIT_DESTINATION)
def test_a_duckdb_file_in_a_folder_that_does_not_exist_exits_5_naming_the_folder(no_api, tmp_path, capsys):
    target = tmp_path / "no" / "such" / "folder" / "w.duckdb"
    code, plain, _ = both_ways(capsys, ["load", "--duckdb-file", str(target), "--pipelines-dir", str(tmp_path / "p")])
    assert code == EXIT_DESTINATION
    line = one_error_line(plain)
    assert str(target) in line and f"the folder {target.parent} does not exist; create it" in line


def _without_root_file_override() -> None:
    """Run as root, but obey file permissions: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH before exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@covers(EXIT_DESTINATION)
def test_a_duckdb_file_in_a_read_only_folder_exits_5_naming_the_file(tmp_path):
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    target = read_only / "w.duckdb"
    env = {**os.environ, "SOURCES__CERTIVERSE__API_TOKEN": "tok", "SOURCES__CERTIVERSE__RETRY_BUDGET": "0"}
    # a real process: root ignores permission bits unless it gives up the capability that lets it
    preexec = _without_root_file_override if os.geteuid() == 0 else None
    codes, errors = [], []
    for verbose in ([], ["-v"]):
        done = subprocess.run(
            [sys.executable, "-m", "certiverse_warehouse.pipelines.cli", *verbose, "load",
             "--base-url", f"http://127.0.0.1:{closed_port()}", "--duckdb-file", str(target),
             "--pipelines-dir", str(tmp_path / "p")],
            capture_output=True, text=True, env=env, cwd=tmp_path, preexec_fn=preexec, timeout=120,
        )
        codes.append(done.returncode)
        errors.append(done.stderr)
    read_only.chmod(0o755)
    assert codes == [EXIT_DESTINATION, EXIT_DESTINATION], errors
    line = one_error_line(errors[0])
    assert f"cannot write the DuckDB file {target}: permission denied" in line and "writable" in line
    assert not target.exists()


@covers(EXIT_DESTINATION)
def test_postgres_unreachable_exits_5_naming_host_and_port(no_api, tmp_path, monkeypatch, capsys):
    port = closed_port()
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", f"postgresql://loader:{PG_PASSWORD}@127.0.0.1:{port}/wh")
    code, plain, verbose = both_ways(capsys, ["load", "--destination", "postgres",
                                              "--pipelines-dir", str(tmp_path / "p")])
    assert code == EXIT_DESTINATION
    line = one_error_line(plain)
    assert f"cannot reach Postgres at 127.0.0.1:{port} (Connection refused)" in line
    assert "check that the server runs" in line
    assert PG_PASSWORD not in plain + verbose


@pytest.mark.postgres
@covers(EXIT_DESTINATION)
def test_postgres_refusing_the_login_exits_5_naming_host_and_user(postgres_server, no_api, tmp_path, monkeypatch,
                                                                  capsys):
    from psycopg2.extensions import parse_dsn

    server = parse_dsn(postgres_server.dsn)
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS",
                       f"postgresql://{server['user']}:{PG_PASSWORD}@{server['host']}:{server['port']}/postgres")
    code, plain, verbose = both_ways(capsys, ["load", "--destination", "postgres",
                                              "--pipelines-dir", str(tmp_path / "p")])
    assert code == EXIT_DESTINATION
    line = one_error_line(plain)
    assert (f"Postgres at {server['host']}:{server['port']} refused the login of user {server['user']}" in line
            and "check the user and password" in line)
    assert PG_PASSWORD not in plain + verbose


@covers(EXIT_DESTINATION)
def test_another_run_of_the_pipeline_in_progress_exits_5(no_api, tmp_path, capsys):
    lock_file = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=tmp_path / "p").lock_file
    lock_file.parent.mkdir(parents=True)
    with open(lock_file, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running load holds
        code, plain, _ = both_ways(capsys, ["load", *warehouse(tmp_path)])
    assert code == EXIT_DESTINATION
    assert "is already running" in one_error_line(plain)


# -- 6 stale, 7 transform ------------------------------------------------------------------------


@covers(EXIT_STALE)
def test_status_of_a_warehouse_never_loaded_exits_6(tmp_path, capsys):
    assert main(["status", *warehouse(tmp_path)]) == EXIT_STALE
    assert main(["-v", "status", *warehouse(tmp_path)]) == EXIT_STALE


@covers(EXIT_TRANSFORM)
def test_transform_with_nothing_loaded_exits_7(tmp_path, capsys):
    code, plain, _ = both_ways(capsys, ["transform", *warehouse(tmp_path)])
    assert code == EXIT_TRANSFORM
    assert "run a load first" in one_error_line(plain)


@pytest.mark.slow
@covers(EXIT_TRANSFORM)
def test_a_failing_dbt_test_exits_7_naming_it(small_tenant_template, simulator, tmp_path, capsys):
    context = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=tmp_path / "p")
    with simulator(small_tenant_template) as (app, url):
        run_load(context, {"base_url": url, "api_token": app.token})
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:  # a partner twice: stg_partners' unique test fails
        con.execute("insert into certiverse.partners select * from certiverse.partners limit 1")
    # once: a dbt build is slow, and -v keeping 7 is pinned by the test above
    code = main(["transform", "--as-of", small_tenant_template.today.isoformat(), *warehouse(tmp_path)])
    assert code == EXIT_TRANSFORM
    line = one_error_line(capsys.readouterr().err)
    assert "unique_stg_partners_partner_id" in line and "previous marts are unchanged" in line


# -- 130, 143 ------------------------------------------------------------------------------------


@covers(EXIT_SIGINT)
def test_an_interrupted_command_exits_130(tmp_path, monkeypatch, capsys):
    from certiverse_warehouse.pipelines.reporting import status

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(status, "pipeline_status", interrupted)
    code, _, _ = both_ways(capsys, ["status", *warehouse(tmp_path)])
    assert code == EXIT_SIGINT


# -- the table itself ----------------------------------------------------------------------------


def test_every_row_of_the_table_is_pinned_by_a_test_here():
    pinned = {mark.args[0] for test in globals().values() if callable(test)
              for mark in getattr(test, "pytestmark", []) if mark.name == "covers"}
    # 143 (SIGTERM) needs a signal handler in main(); its tests send the signal to a real process
    assert {row.code for row in EXIT_CODES} - {EXIT_SIGTERM} <= pinned


def test_the_readme_states_the_same_table_as_the_code():
    page = (ROOT / "README.md").read_text()
    section = page.split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+?) \| (.+?) \|$", section, re.MULTILINE)
    assert [(int(code), meaning, action) for code, meaning, action in rows] == [
        (row.code, row.meaning, row.action) for row in EXIT_CODES]


def test_help_lists_every_exit_code():
    text = " ".join(build_parser().format_help().split())
    for row in EXIT_CODES:
        assert re.search(rf"\b{row.code} \w", text), row
    assert "never changes the code" in text
