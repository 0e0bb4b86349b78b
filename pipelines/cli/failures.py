"""Every failure a command can end with, mapped onto one exit code and one line (see ``codes.py``).

Errors reach the CLI wrapped: dlt wraps what a step raised in ``PipelineStepFailed``
(``.exception``), a failed connection in ``DestinationConnectionError`` (``.inner_exc``),
a failed statement in ``DatabaseException`` (``.dbapi_exception``), and Python chains
causes. :func:`classify` collects the whole chain, then asks the rules in order of how
specific they are; the first rule that recognises any link of the chain decides. Code 1
is left for what no rule recognises: something unexpected.

Imports sit in the rules: `certiverse --help` answers without loading dlt.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Callable, Iterator

from .codes import (
    EXIT_API,
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_DESTINATION,
    EXIT_FAILURE,
    EXIT_TRANSFORM,
)

Outcome = tuple[int, str]

POSTGRES_SETTING = "DESTINATION__POSTGRES__CREDENTIALS (or [destination.postgres] credentials in .dlt/secrets.toml)"
DUCKDB_SETTING = "--duckdb-file (or DESTINATION__DUCKDB__CREDENTIALS)"


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: causes, contexts and dlt's wrapped exceptions, outermost first."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen or not isinstance(current, BaseException):
            continue
        seen.add(id(current))
        yield current
        todo += [getattr(current, name, None) for name in ("exception", "inner_exc", "dbapi_exception")]
        # `raise ... from None` says the error being handled is not the cause: not followed
        todo += [current.__cause__, None if current.__suppress_context__ else current.__context__]


def classify(exc: BaseException) -> Outcome:
    """Exit code and one-line message for a failure, looking through dlt's wrappers for the cause."""
    links = list(chain(exc))
    for rule in _RULES:
        for link in links:
            outcome = rule(link)
            if outcome is not None:
                return outcome[0], _one_line(outcome[1])
    return EXIT_FAILURE, _one_line(f"{type(exc).__name__}: {exc}") + " (unexpected: run with -v and report it)"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# -- rules, most specific first ------------------------------------------------------------------


def _token(link: BaseException) -> Outcome | None:
    from ...sources.certiverse import AuthError

    return (EXIT_AUTH, str(link)) if isinstance(link, AuthError) else None


def _configuration(link: BaseException) -> Outcome | None:
    from dlt.common.configuration.exceptions import ConfigFieldMissingException, ConfigurationException

    from ...sources.certiverse import ConfigurationError

    from ..purchase import PurchaseRefused

    if isinstance(link, ConfigFieldMissingException):
        return _missing_config(link)
    if isinstance(link, (ConfigurationError, PurchaseRefused)):
        return EXIT_CONFIG, str(link)
    if isinstance(link, ConfigurationException):
        # dlt's message can run over many lines (where it looked): its first line, the rest with -v
        return EXIT_CONFIG, f"configuration: {str(link).strip().splitlines()[0]} (-v shows more)"
    return None


def _warehouse_busy(link: BaseException) -> Outcome | None:
    from ..locks import PipelineBusyError, WarehouseLockedError, lock_holder
    from ..publishing import PublishError

    if isinstance(link, (WarehouseLockedError, PipelineBusyError, PublishError)):
        return EXIT_DESTINATION, str(link)
    holder = lock_holder(link)
    if holder:
        return EXIT_DESTINATION, (f"the DuckDB file is locked by {holder}: close that connection and run again; "
                                  "readers should open the published copy instead (see `certiverse status`)")
    return None


def _transform(link: BaseException) -> Outcome | None:
    from ..transform.runner import TransformError
    from ..transform.swap import SwapError

    if isinstance(link, (TransformError, SwapError)):
        return EXIT_TRANSFORM, str(link)
    return None


def _api(link: BaseException) -> Outcome | None:
    from ...sources.certiverse import CertiverseError

    return (EXIT_API, str(link)) if isinstance(link, CertiverseError) else None


def _database(link: BaseException) -> Outcome | None:
    """A DuckDB or Postgres error, said as what is wrong with which file or host, and what to do."""
    duckdb, psycopg2 = sys.modules.get("duckdb"), sys.modules.get("psycopg2")
    # a module never imported raised nothing: no import just to look
    if duckdb is not None and isinstance(link, duckdb.Error):
        return EXIT_DESTINATION, describe_duckdb_error(link)
    if psycopg2 is not None and isinstance(link, psycopg2.Error):
        return EXIT_DESTINATION, describe_postgres_error(link)
    return None


def _destination(link: BaseException) -> Outcome | None:
    """dlt's destination errors and failed load/normalize/sync steps with no database error inside."""
    from dlt.common.destination.exceptions import DestinationException
    from dlt.pipeline.exceptions import PipelineStepFailed

    from ..reporting.report import ReportError

    if isinstance(link, (DestinationException, ReportError)):
        return EXIT_DESTINATION, str(link)
    if isinstance(link, PipelineStepFailed) and link.step in ("load", "sync", "normalize"):
        return EXIT_DESTINATION, f"{link.step} step failed: {link.exception}"
    return None


def _storage(link: BaseException) -> Outcome | None:
    """A file or folder the command writes (pipeline state, the report, the published copy)."""
    if not isinstance(link, OSError):
        return None
    if isinstance(link, BrokenPipeError):
        # not a file of ours: whoever read the output (`| head`) went away before it was written
        return EXIT_FAILURE, "the output's reader went away before it was written (broken pipe)"
    if not link.strerror:
        return EXIT_DESTINATION, str(link)
    where = f" {link.filename}" if link.filename else ""
    return EXIT_DESTINATION, (f"cannot use{where}: {link.strerror}; check that the folder exists, is writable "
                              "by this user and has space")


def _api_data(link: BaseException) -> Outcome | None:
    """A value the API sent with a type its reference does not give (Arrow refuses to convert it)."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None and isinstance(link, pyarrow.ArrowException):
        return EXIT_API, f"the API sent a value the loader cannot store as documented: {link}"
    return None


_RULES: tuple[Callable[[BaseException], Outcome | None], ...] = (
    _token, _configuration, _warehouse_busy, _transform, _api, _database, _destination, _storage, _api_data,
)


# -- destination messages -------------------------------------------------------------------------

_DUCKDB_FILE = re.compile(r'Cannot open (?:database|file) "(?P<path>[^"]+)"')


def describe_duckdb_error(error: BaseException) -> str:
    """One line naming the DuckDB file and what to do: a missing folder, no permission, else DuckDB's words."""
    text = _one_line(str(error))
    match = _DUCKDB_FILE.search(text)
    path = match.group("path") if match else None
    folder = os.path.dirname(path) if path else None
    if path and "No such file or directory" in text and folder and not os.path.isdir(folder):
        return (f"cannot create the DuckDB file {path}: the folder {folder} does not exist; create it, or point "
                f"{DUCKDB_SETTING} at a file in an existing folder")
    if path and ("Permission denied" in text or "Read-only file system" in text):
        why = "read-only file system" if "Read-only" in text else "permission denied"
        return (f"cannot write the DuckDB file {path}: {why} (the file or its folder {folder} is read-only for "
                f"this user); make it writable, or point {DUCKDB_SETTING} at a writable place")
    if path:
        return f"cannot open the DuckDB file {path}: {text}"
    return f"the DuckDB warehouse failed: {text}"


_PG_SERVER = re.compile(r'connection to server (?:at "(?P<host>[^"]+)"(?: \([^)]*\))?, port (?P<port>\d+)|on socket '
                        r'"(?P<socket>[^"]+)") failed: (?P<reason>.*)', re.DOTALL)
_PG_HOST_NAME = re.compile(r'could not translate host name "(?P<host>[^"]+)"')
_PG_USER = re.compile(r'(?:password authentication failed|no pg_hba\.conf entry.*?) for (?:host .*? )?'
                      r'user "(?P<user>[^"]+)"|role "(?P<role>[^"]+)" does not exist')
_PG_DATABASE = re.compile(r'database "(?P<database>[^"]+)" does not exist')


def describe_postgres_error(error: BaseException) -> str:
    """One line naming the Postgres host and what to do (psycopg2's messages never carry the password)."""
    text = str(error).strip()
    name = _PG_HOST_NAME.search(text)
    if name:
        return (f"cannot resolve the Postgres host {name.group('host')}: check the host in {POSTGRES_SETTING}")
    server = _PG_SERVER.search(text)
    if server is None:
        return f"Postgres failed: {_one_line(text)}"
    where = server.group("socket") or f"{server.group('host')}:{server.group('port')}"
    reason = _one_line(server.group("reason").replace("FATAL:", ""))
    user, database = _PG_USER.search(reason), _PG_DATABASE.search(reason)
    if "Connection refused" in reason or "No route to host" in reason or "Network is unreachable" in reason:
        return (f"cannot reach Postgres at {where} ({reason.split('.')[0].split(' Is the server')[0]}): check that "
                f"the server runs and the host and port in {POSTGRES_SETTING}")
    if "timeout expired" in reason:
        return f"Postgres at {where} did not answer in time: check the host, the port and the network"
    if user:
        who = user.group("user") or user.group("role")
        return (f"Postgres at {where} refused the login of user {who} ({reason}): check the user and password in "
                f"{POSTGRES_SETTING}")
    if database:
        return (f"Postgres at {where} has no database {database.group('database')}: create it, or fix the "
                f"database in {POSTGRES_SETTING}")
    return f"Postgres at {where} failed: {reason}"


# -- dlt's missing configuration ------------------------------------------------------------------

# dlt's message lists every place it looked, over twenty lines: one line first, the rest with -v.
_MISSING = {
    "base_url": (EXIT_CONFIG, "no base URL: set [sources.certiverse] base_url in .dlt/config.toml, "
                              "SOURCES__CERTIVERSE__BASE_URL, or --base-url"),
    "api_token": (EXIT_AUTH, "no API token: set SOURCES__CERTIVERSE__API_TOKEN or [sources.certiverse] api_token "
                             "in .dlt/secrets.toml"),
    "credentials": (EXIT_CONFIG, "no destination credentials: for Postgres set DESTINATION__POSTGRES__CREDENTIALS "
                                 "(postgresql://user:password@host:5432/db) or [destination.postgres] credentials "
                                 "in .dlt/secrets.toml"),
}


def _missing_config(exc: Any) -> Outcome:
    for field in exc.fields:
        if field in _MISSING:
            code, message = _MISSING[field]
            return code, message + " (-v shows where dlt looked)"
    return EXIT_CONFIG, (f"missing configuration {', '.join(exc.fields)} of {exc.spec_name} "
                         "(-v shows where dlt looked)")
