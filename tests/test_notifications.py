"""Notifications: one message per notice to a real HTTP server on loopback, never a secret, never a hold-up."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from types import SimpleNamespace

from certiverse_warehouse.pipelines.cli import EXIT_CONFIG, main
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
