"""Notifications: one message per notice to a real HTTP server on loopback, never a secret, never a hold-up."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from contextlib import nullcontext
from types import SimpleNamespace

import pytest

from certiverse_warehouse.pipelines.cli import EXIT_CONFIG, EXIT_OK, EXIT_STALE, main
from certiverse_warehouse.pipelines.context import RunContext
from certiverse_warehouse.pipelines.load import run_load
from certiverse_warehouse.pipelines.load.counters import CounterCheck
from certiverse_warehouse.pipelines.load.schema_changes import new_columns
from certiverse_warehouse.pipelines.notifications import (
    COMMAND_FAILED,
    RUN_FINDINGS,
    WAREHOUSE_STALE,
    Webhook,
    failure_notice,
    findings_notice,
    load_findings,
    redact,
    stale_notice,
)
from tests.test_counter_check import use
from tests.webhooks import closed_port_url, hanging_webhook, recording_webhook

TOKEN = "tok-3f9a1c77e2b14d0c"
WAREHOUSE = "/srv/warehouse.duckdb"
TIMEOUT = 1.0
# generous: the machine is shared; what matters is that a hang costs the timeout, not forever
BOUND = TIMEOUT * 3 + 5


def test_a_failure_reaches_the_webhook_as_one_slack_message_with_a_machine_readable_part():
    with recording_webhook() as (url, received):
        delivered = Webhook(url, timeout=TIMEOUT).send(failure_notice("run", 5, "cannot reach Postgres", WAREHOUSE))
    assert delivered
    [message] = received.messages
    assert message["text"] == f"certiverse run FAILED (exit 5) on {WAREHOUSE}: cannot reach Postgres"
    facts = message["certiverse"]
    assert (facts["event"], facts["command"], facts["exit_code"], facts["warehouse"]) == (
        COMMAND_FAILED, "run", 5, WAREHOUSE)
    assert facts["figures"]["message"] == "cannot reach Postgres"


def test_secrets_in_a_message_are_replaced_before_it_leaves():
    message = f"the base URL is the API root: use https://t.example, not https://t.example/{TOKEN}"
    with recording_webhook() as (url, received):
        Webhook(url, timeout=TIMEOUT, secrets=[TOKEN]).send(failure_notice("load", 2, message, WAREHOUSE))
    [raw] = received.raw
    assert TOKEN.encode() not in raw and b"***" in raw
    assert b"webhook-secret-part" not in raw  # the webhook's own URL is a secret too


def test_redact_finds_a_secret_url_encoded_and_leaves_short_words_alone():
    secret = "p@ss word/1"
    text = f"dsn postgresql://u:p%40ss%20word%2F1@h/db and {secret}; a short 'pw' stays"
    assert redact({"a": [text]}, [secret, "pw"]) == {"a": ["dsn postgresql://u:***@h/db and ***; a short 'pw' stays"]}


def test_a_stale_warehouse_is_said_with_its_age_and_limit():
    status = {"last_success_at": "2026-12-01T02:00:00+00:00", "age_hours": 40.25, "freshness_limit_hours": 36.0}
    with recording_webhook() as (url, received):
        Webhook(url, timeout=TIMEOUT).send(stale_notice("status", 6, status, WAREHOUSE))
    [message] = received.messages
    assert "is STALE: last successful load 2026-12-01T02:00:00+00:00 (40.2 h ago; limit 36 h)" in message["text"]
    assert message["certiverse"]["event"] == WAREHOUSE_STALE and message["certiverse"]["exit_code"] == 6
    assert message["certiverse"]["figures"]["age_hours"] == 40.25


def test_a_run_with_findings_sends_one_message_listing_each_and_a_quiet_run_sends_none():
    check = CounterCheck(checked=150, reread=["PU-1", "PU-2"], repaired=["PU-1"])
    quiet = SimpleNamespace(counter_check=CounterCheck(checked=150), new_columns={}, full_read_reason=None)
    busy = SimpleNamespace(counter_check=check, new_columns={"partners": ["region"]},
                           full_read_reason="the warehouse holds no earlier load")
    assert findings_notice("run", 0, load_findings(quiet), WAREHOUSE) is None
    with recording_webhook() as (url, received):
        Webhook(url, timeout=TIMEOUT).send(findings_notice("run", 0, load_findings(busy), WAREHOUSE))
    [message] = received.messages
    findings = {f["kind"]: f for f in message["certiverse"]["findings"]}
    assert message["certiverse"]["event"] == RUN_FINDINGS
    assert findings["purchases_repaired"]["purchases"] == ["PU-1"]
    assert findings["new_columns"]["columns"] == {"partners": ["region"]}
    assert findings["full_read"]["reason"] == "the warehouse holds no earlier load"
    assert "partners.region" in message["text"] and "PU-1" in message["text"]


def test_an_unreachable_webhook_is_logged_and_never_raised(caplog):
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        assert not Webhook(closed_port_url(), timeout=TIMEOUT).send(failure_notice("run", 4, "x", WAREHOUSE))
    assert time.monotonic() - started < BOUND
    assert "not delivered: ConnectError" in caplog.text and "/hook" not in caplog.text


def test_a_hanging_webhook_costs_at_most_its_timeout(caplog):
    with hanging_webhook() as url, caplog.at_level(logging.WARNING):
        started = time.monotonic()
        assert not Webhook(url, timeout=TIMEOUT).send(failure_notice("run", 4, "x", WAREHOUSE))
        waited = time.monotonic() - started
    assert TIMEOUT * 0.9 <= waited < BOUND
    assert "ReadTimeout" in caplog.text


def test_a_webhook_refusing_the_message_is_logged(caplog):
    with recording_webhook(status=500) as (url, received), caplog.at_level(logging.WARNING):
        assert not Webhook(url, timeout=TIMEOUT).send(failure_notice("run", 4, "x", WAREHOUSE))
    assert len(received.raw) == 1 and "answered HTTP 500" in caplog.text


def test_no_webhook_configured_sends_nothing():
    assert not Webhook(None).send(failure_notice("run", 4, "x", WAREHOUSE))


def test_the_webhook_is_configured_the_dlt_way(tmp_path, monkeypatch):
    monkeypatch.delenv("NOTIFICATIONS__WEBHOOK_URL", raising=False)
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text('[notifications]\nwebhook_url = "http://127.0.0.1:1/from-toml"\n')
    (tmp_path / ".dlt" / "config.toml").write_text("[notifications]\ntimeout = 2.5\n")
    # dlt reads .dlt/ of the working folder once per process: a process of its own, as a command would be
    shown = subprocess.run(
        [sys.executable, "-c", "from certiverse_warehouse.pipelines.notifications import Webhook; "
         "w = Webhook.from_configuration(); print(w.url, w.timeout)"],
        cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60,
    ).stdout.split()
    assert shown == ["http://127.0.0.1:1/from-toml", "2.5"]
    monkeypatch.setenv("NOTIFICATIONS__WEBHOOK_URL", "http://127.0.0.1:1/from-env")
    assert Webhook.from_configuration().url == "http://127.0.0.1:1/from-env"
    monkeypatch.delenv("NOTIFICATIONS__WEBHOOK_URL")
    assert Webhook.from_configuration().url is None


def test_a_broken_notification_setting_turns_notifications_off_without_failing(monkeypatch, caplog):
    monkeypatch.setenv("NOTIFICATIONS__WEBHOOK_URL", "http://127.0.0.1:1/hook")
    monkeypatch.setenv("NOTIFICATIONS__TIMEOUT", "soon")
    with caplog.at_level(logging.WARNING):
        assert Webhook.from_configuration().url is None
    assert "notifications are off" in caplog.text


def test_new_columns_are_those_the_schema_gained_and_none_on_a_first_load():
    before = {"partners": frozenset({"id", "name"}), "vouchers": frozenset({"id"})}
    after = {"partners": frozenset({"id", "name", "region"}), "vouchers": frozenset({"id"}),
             "partners__labels": frozenset({"value"})}
    assert new_columns(before, after) == {"partners": ["region"], "partners__labels": ["value"]}
    assert new_columns({}, after) == {}


# -- the commands ----------------------------------------------------------------------------------


def test_a_failed_command_sends_one_message_with_its_code_and_never_the_token(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", TOKEN)
    # a token pasted into the base URL: the refusal quotes the URL, token and all
    pasted = f"http://127.0.0.1:9/api/{TOKEN}"
    with recording_webhook() as (url, received):
        monkeypatch.setenv("NOTIFICATIONS__WEBHOOK_URL", url)
        code = main(["load", "--base-url", pasted, "--duckdb-file", str(tmp_path / "w.duckdb"),
                     "--pipelines-dir", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == EXIT_CONFIG
    [raw] = received.raw
    assert TOKEN.encode() not in raw and TOKEN not in err
    [message] = received.messages
    facts = message["certiverse"]
    assert (facts["event"], facts["command"], facts["exit_code"]) == (COMMAND_FAILED, "load", EXIT_CONFIG)
    assert facts["warehouse"] == str(tmp_path / "w.duckdb")
    assert "the base URL is the API root without a path: use http://127.0.0.1:9" in message["text"]


def use_a_settled_voucher(tenant) -> str:
    """A deactivated voucher of a Complete purchase is re-activated and used today, which no nightly plan
    expects: the counter check finds and repairs its purchase. Returns the purchase's code."""
    vs = tenant.vouchers
    return use(tenant, min(v for v in tenant.deactivated if tenant.purchases[vs.purchase[v]].status == "Complete"))


def nightly_env(monkeypatch, url: str) -> None:
    """Small pages, a low cap and a long rolling re-check: the second load is a nightly read that re-reads
    next to nothing settled (what changed there reaches the warehouse only through the counter check)."""
    monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", TOKEN)
    monkeypatch.setenv("SOURCES__CERTIVERSE__BASE_URL", url)
    monkeypatch.setenv("SOURCES__CERTIVERSE__RECORD_CAP", "400")
    monkeypatch.setenv("SOURCES__CERTIVERSE__RECHECK_NIGHTS", "100000")


def test_a_run_that_repairs_a_purchase_sends_one_message_naming_it(small_tenant, simulator, tmp_path, monkeypatch,
                                                                    capsys):
    args = ["--duckdb-file", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p")]
    with simulator(small_tenant, token=TOKEN, cap=400, page_size=20) as (_, api), \
            recording_webhook() as (url, received):
        nightly_env(monkeypatch, api)
        monkeypatch.setenv("NOTIFICATIONS__WEBHOOK_URL", url)
        assert main(["load", *args]) == EXIT_OK  # a first load: nothing to tell
        assert received.raw == []
        code = use_a_settled_voucher(small_tenant)
        assert main(["load", *args]) == EXIT_OK
    [raw] = received.raw
    assert TOKEN.encode() not in raw
    [message] = received.messages
    facts = message["certiverse"]
    assert (facts["event"], facts["command"], facts["exit_code"]) == (RUN_FINDINGS, "load", EXIT_OK)
    [finding] = facts["findings"]
    assert finding["kind"] == "purchases_repaired" and code in finding["purchases"]
    assert code in message["text"] and facts["figures"]["mode"].startswith("nightly read")


def test_a_column_the_api_starts_to_send_is_told_once(small_tenant, simulator, tmp_path, monkeypatch, capsys):
    args = ["--duckdb-file", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p")]
    documented = small_tenant.purchase_record
    with simulator(small_tenant, token=TOKEN) as (_, api), recording_webhook() as (url, received):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", TOKEN)
        monkeypatch.setenv("NOTIFICATIONS__WEBHOOK_URL", url)
        assert main(["load", "--base-url", api, *args]) == EXIT_OK
        monkeypatch.setattr(small_tenant, "purchase_record", lambda i: {**documented(i), "salesRegion": "EMEA"})
        assert main(["load", "--base-url", api, *args]) == EXIT_OK
        assert main(["load", "--base-url", api, *args]) == EXIT_OK  # known by now: nothing new
    [raw] = received.raw
    assert TOKEN.encode() not in raw
    [message] = received.messages
    [finding] = message["certiverse"]["findings"]
    assert finding["kind"] == "new_columns" and finding["columns"] == {"purchases": ["sales_region"]}
    assert "purchases.sales_region" in message["text"]


def test_a_full_read_forced_by_a_warehouse_that_lost_its_data_is_told(small_tenant_template, simulator, tmp_path,
                                                                       monkeypatch, capsys):
    args = ["--duckdb-file", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p")]
    with simulator(small_tenant_template, token=TOKEN) as (_, api), recording_webhook() as (url, received):
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", TOKEN)
        monkeypatch.setenv("NOTIFICATIONS__WEBHOOK_URL", url)
        assert main(["load", "--base-url", api, *args]) == EXIT_OK
        (tmp_path / "w.duckdb").unlink()  # someone deleted the warehouse; the local state stayed
        assert main(["load", "--base-url", api, *args]) == EXIT_OK
    [message] = received.messages
    [finding] = message["certiverse"]["findings"]
    assert finding["kind"] == "full_read" and finding["reason"] == "the warehouse holds no earlier load"
    assert "everything was read again: the warehouse holds no earlier load" in message["text"]


def test_status_finding_the_warehouse_stale_sends_one_message(small_tenant_template, simulator, tmp_path,
                                                              monkeypatch, capsys):
    monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", TOKEN)
    context = RunContext.from_config("duckdb", str(tmp_path / "w.duckdb"), pipelines_dir=tmp_path / "p")
    with simulator(small_tenant_template, token=TOKEN) as (_, api):
        run_load(context, {"base_url": api})
    args = ["--duckdb-file", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p")]
    with recording_webhook() as (url, received):
        monkeypatch.setenv("NOTIFICATIONS__WEBHOOK_URL", url)
        assert main(["status", *args]) == EXIT_OK  # fresh: nothing to tell
        assert main(["status", "--max-age-hours", "0", *args]) == EXIT_STALE
    [raw] = received.raw
    assert TOKEN.encode() not in raw
    [message] = received.messages
    facts = message["certiverse"]
    assert (facts["event"], facts["command"], facts["exit_code"]) == (WAREHOUSE_STALE, "status", EXIT_STALE)
    assert facts["warehouse"] == str(tmp_path / "w.duckdb") and facts["figures"]["freshness_limit_hours"] == 0
    assert "is STALE: last successful load" in message["text"]


@pytest.mark.parametrize("webhook", ["unreachable", "hanging"])
def test_a_webhook_that_fails_or_hangs_leaves_the_result_and_the_code_and_costs_seconds_at_most(
    webhook, small_tenant, simulator, tmp_path, monkeypatch, capsys
):
    args = ["--json", "--duckdb-file", str(tmp_path / "w.duckdb"), "--pipelines-dir", str(tmp_path / "p")]
    documented = small_tenant.purchase_record
    monkeypatch.setenv("NOTIFICATIONS__TIMEOUT", str(TIMEOUT))
    with simulator(small_tenant, token=TOKEN) as (_, api), \
            (hanging_webhook() if webhook == "hanging" else nullcontext(closed_port_url())) as url:
        monkeypatch.setenv("SOURCES__CERTIVERSE__API_TOKEN", TOKEN)
        monkeypatch.setenv("NOTIFICATIONS__WEBHOOK_URL", url)
        assert main(["load", "--base-url", api, *args]) == EXIT_OK
        capsys.readouterr()
        # a new column: the load has something to tell, and the webhook cannot take it
        monkeypatch.setattr(small_tenant, "purchase_record", lambda i: {**documented(i), "salesRegion": "EMEA"})
        started = time.monotonic()
        code = main(["load", "--base-url", api, *args])
        wall = time.monotonic() - started
        summary = json.loads(capsys.readouterr().out)
        # a failing command: the same code as without a webhook
        started = time.monotonic()
        failed = main(["load", "--base-url", api + "/not-the-root", *args])
        failing_wall = time.monotonic() - started
    assert code == EXIT_OK and failed == EXIT_CONFIG
    assert summary["rows"]["purchases"] == len(small_tenant.records("purchases"))
    assert wall - summary["seconds"] < BOUND and failing_wall < BOUND
    assert f"not delivered: {'ReadTimeout' if webhook == 'hanging' else 'ConnectError'}" in capsys.readouterr().err
