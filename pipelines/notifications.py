"""Telling someone: one message to a webhook when an operator should know something.

Configured the dlt way (a Slack webhook URL is a secret: put it in secrets.toml or the environment)::

    [notifications]                  # .dlt/secrets.toml (or config.toml)
    webhook_url = "https://hooks.slack.com/services/..."
    timeout = 3.0                    # seconds per step of the request (connect, send, answer)

or ``NOTIFICATIONS__WEBHOOK_URL`` / ``NOTIFICATIONS__TIMEOUT``. No URL, no messages.

A **notice** is one message about one command: it **failed** (``command_failed``), ``status``
found the warehouse **stale** (``warehouse_stale``), or a run ended with **findings**
(``run_findings``): purchases the counter check repaired, columns the API started to send,
a full read forced by a warehouse that lost its data. Its JSON is Slack's (``text``) plus a
machine-readable part under ``certiverse``.

Sending never fails the command and never holds it long: one try, each step of the request
bounded by the timeout, the answer's body never read; a failure is logged, not raised. Every
string of a message is stripped of the secrets the command knows (the API token, the
Postgres password, the webhook URL itself) before it leaves.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional
from urllib.parse import quote, unquote, urlsplit

import httpx
from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.typing import TSecretStrValue

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 3.0
REDACTED = "***"
# A secret shorter than this would blank out ordinary words of a message; real tokens are far longer.
MIN_SECRET_LENGTH = 6

COMMAND_FAILED = "command_failed"
WAREHOUSE_STALE = "warehouse_stale"
RUN_FINDINGS = "run_findings"


@configspec
class NotificationsConfiguration(BaseConfiguration):
    """``[notifications]``: where messages go (``webhook_url``) and how long a try may take (``timeout``)."""

    webhook_url: Optional[TSecretStrValue] = None
    timeout: float = DEFAULT_TIMEOUT


def notifications_configuration() -> NotificationsConfiguration:
    """``[notifications]`` from ``.dlt/*.toml`` and the environment."""
    return resolve_configuration(NotificationsConfiguration(), sections=("notifications",))


@dataclass(frozen=True)
class Finding:
    """Something a run found that an operator should know: a kind, a sentence, its figures."""

    kind: str  # purchases_repaired | new_columns | full_read
    sentence: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """One message about one command."""

    event: str
    command: str
    exit_code: int
    warehouse: str
    text: str
    figures: dict[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()

    def payload(self) -> dict[str, Any]:
        """Slack's ``{"text": ...}`` plus the same facts for machines under ``certiverse``."""
        lines = [self.text] + [f"- {finding.sentence}" for finding in self.findings]
        return {
            "text": "\n".join(lines),
            "certiverse": {
                "event": self.event,
                "command": self.command,
                "exit_code": self.exit_code,
                "warehouse": self.warehouse,
                "host": socket.gethostname(),
                "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "figures": self.figures,
                "findings": [{"kind": f.kind, "text": f.sentence, **f.figures} for f in self.findings],
            },
        }


def failure_notice(command: str, exit_code: int, message: str, warehouse: str) -> Notice:
    """The command failed with ``exit_code``; ``message`` is the one line it printed."""
    return Notice(COMMAND_FAILED, command, exit_code, warehouse,
                  f"certiverse {command} FAILED (exit {exit_code}) on {warehouse}: {message}",
                  figures={"message": message})


def stale_notice(command: str, exit_code: int, status: Mapping[str, Any], warehouse: str) -> Notice:
    """``status`` found the warehouse older than its freshness limit (or never loaded)."""
    limit = status.get("freshness_limit_hours")
    if status.get("last_success_at") is None:
        text = f"certiverse {command}: the warehouse {warehouse} has never been loaded (limit {limit:g} h)"
    else:
        text = (f"certiverse {command}: the warehouse {warehouse} is STALE: last successful load "
                f"{status['last_success_at']} ({status['age_hours']:.1f} h ago; limit {limit:g} h)")
    figures = {key: status.get(key) for key in ("last_success_at", "age_hours", "freshness_limit_hours")}
    return Notice(WAREHOUSE_STALE, command, exit_code, warehouse, text, figures=figures)


def findings_notice(command: str, exit_code: int, findings: Iterable[Finding], warehouse: str,
                    figures: Mapping[str, Any] | None = None) -> Notice | None:
    """A run's findings in one message; None when there is nothing to tell."""
    found = tuple(findings)
    if not found:
        return None
    things = "one thing" if len(found) == 1 else f"{len(found)} things"
    return Notice(RUN_FINDINGS, command, exit_code, warehouse,
                  f"certiverse {command} on {warehouse} finished (exit {exit_code}) with {things} to know:",
                  figures=dict(figures or {}), findings=found)


def load_findings(result: Any) -> list[Finding]:
    """What a load (``LoadResult``) found that an operator should know."""
    found = []
    check = getattr(result, "counter_check", None)
    if check is not None and check.repaired:
        shown = ", ".join(check.repaired[:10]) + (", ..." if len(check.repaired) > 10 else "")
        found.append(Finding("purchases_repaired",
                             f"{len(check.repaired):,} purchase(s) repaired by the counter check (their vouchers "
                             f"disagreed with the API's counters and were read again): {shown}",
                             {"purchases": list(check.repaired), "count": len(check.repaired)}))
    added = getattr(result, "new_columns", None) or {}
    if added:
        shown = ", ".join(f"{table}.{column}" for table, columns in added.items() for column in columns)
        found.append(Finding("new_columns", f"the API started to send new columns: {shown}",
                             {"columns": {table: list(columns) for table, columns in added.items()}}))
    reason = getattr(result, "full_read_reason", None)
    if reason:
        found.append(Finding("full_read", f"everything was read again: {reason}", {"reason": reason}))
    return found


class Webhook:
    """Where notices go. ``url`` None: nowhere (every send is a no-op)."""

    def __init__(self, url: str | None, *, timeout: float = DEFAULT_TIMEOUT, secrets: Iterable[str] = ()) -> None:
        self.url = url or None
        self.timeout = timeout
        self.secrets = tuple(secrets) + ((url,) if url else ())

    @classmethod
    def from_configuration(cls, secrets: Iterable[str] = ()) -> "Webhook":
        """The webhook of ``[notifications]``; never raises (a broken setting is logged, and nothing is sent)."""
        try:
            config = notifications_configuration()
        except Exception as exc:  # a notification setting must not fail the command it reports on
            log.warning("notifications are off: [notifications] cannot be read (%s)", type(exc).__name__)
            return cls(None)
        return cls(config.webhook_url, timeout=config.timeout, secrets=secrets)

    @property
    def where(self) -> str:
        """The webhook's host, for logs (its path is often the secret)."""
        return urlsplit(self.url).netloc if self.url else "nowhere"

    def send(self, notice: Notice | None) -> bool:
        """POST the notice; True when the webhook took it. Never raises, never waits past the timeout a step."""
        if notice is None or self.url is None:
            return False
        payload = redact(notice.payload(), self.secrets)
        try:
            # the body of the answer is never read: a server that trickles it cannot hold the command
            with httpx.Client(timeout=httpx.Timeout(self.timeout), follow_redirects=False) as client:
                with client.stream("POST", self.url, json=payload) as response:
                    status = response.status_code
        except httpx.HTTPError as exc:
            log.warning("notification (%s) to %s not delivered: %s", notice.event, self.where,
                        redact(f"{type(exc).__name__}: {exc}", self.secrets))
            return False
        except Exception as exc:  # an invalid URL and the like: the run goes on
            log.warning("notification (%s) to %s not sent: %s", notice.event, self.where, type(exc).__name__)
            return False
        if status >= 300:
            log.warning("notification (%s) to %s answered HTTP %d", notice.event, self.where, status)
            return False
        log.info("notification (%s) delivered to %s", notice.event, self.where)
        return True


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` (a string, or lists and dicts of them) with every secret replaced by ``***``."""
    forms = sorted({form for secret in secrets if secret and len(str(secret)) >= MIN_SECRET_LENGTH
                    for form in (str(secret), quote(str(secret), safe=""))}, key=len, reverse=True)
    return _redact(value, forms)


def _redact(value: Any, forms: list[str]) -> Any:
    if isinstance(value, str):
        for form in forms:
            value = value.replace(form, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {key: _redact(item, forms) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(item, forms) for item in value]
    return value


def configured_secrets() -> list[str]:
    """The secrets a command may know from dlt's configuration: the API token, the Postgres password (and DSN)."""
    import dlt

    found: list[str] = []
    for key in ("sources.certiverse.api_token", "destination.postgres.credentials",
                "destination.postgres.credentials.password"):
        try:
            value = dlt.secrets.get(key)
        except Exception:  # an unreadable setting fails the command elsewhere, with its own message
            continue
        if isinstance(value, str):
            found.append(value.strip())
            password = _dsn_password(value)
            if password:
                found.append(password)
        elif isinstance(value, Mapping) and value.get("password"):
            found.append(str(value["password"]))
    return found


def _dsn_password(text: str) -> str | None:
    try:
        password = urlsplit(text).password if "://" in text else None
    except ValueError:
        return None
    return unquote(password) if password else None
