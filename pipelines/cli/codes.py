"""Exit codes a scheduler can act on: the contract, in one table.

``EXIT_CODES`` is the one place the codes are described: the ``--help`` epilog is
built from it, and a test checks that the table in ``README.md`` says the
same. ``pipelines.cli.failures.classify`` maps every failure onto these.
"""

from __future__ import annotations

import textwrap
from typing import NamedTuple

EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected: a bug, or a failure nobody has classified yet
EXIT_CONFIG = 2  # usage or configuration; a request refused before (or for) what it asks
EXIT_AUTH = 3  # token missing, malformed or refused
EXIT_API = 4  # the API failed, or the server is not the API
EXIT_DESTINATION = 5  # the warehouse (or a file the command writes) cannot be opened or written; locked
EXIT_STALE = 6  # `status`: the last load is too old, or there is none
EXIT_TRANSFORM = 7  # the marts could not be built (dbt model or test failed): the load is kept
EXIT_SIGINT = 130  # 128 + SIGINT: interrupted (Ctrl-C)
EXIT_SIGTERM = 143  # 128 + SIGTERM: stopped by a scheduler or service manager


class ExitCode(NamedTuple):
    """One row of the contract: the code, what it means, what to do."""

    code: int
    meaning: str
    action: str


EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(EXIT_OK, "success (for `status`: the warehouse is fresh)", "nothing"),
    ExitCode(EXIT_FAILURE, "unexpected failure: a bug, or a failure nobody has classified yet",
             "run again with -v and report the traceback"),
    ExitCode(EXIT_CONFIG, "usage or configuration: a bad option or setting (base URL, destination "
             "credentials missing, a value of the wrong type); a purchase refused before it was sent "
             "(or by the API as invalid)", "fix the command line or .dlt/*.toml / the environment; retrying "
             "as is fails again"),
    ExitCode(EXIT_AUTH, "the API token is missing, malformed or refused (401)",
             "set SOURCES__CERTIVERSE__API_TOKEN to a valid token of a user holding PartnerManageVouchers"),
    ExitCode(EXIT_API, "the API failed: unreachable or failing after the retries, not the API at that "
             "URL (an HTML page, a proxy error), or an answer the loader cannot use",
             "retry later; if it persists, check the base URL and the API's health"),
    ExitCode(EXIT_DESTINATION, "the warehouse cannot be used: a DuckDB file in a folder that does not "
             "exist or is read-only, Postgres unreachable or refusing the login, the DuckDB file locked by "
             "another program, another run of the pipeline in progress, the published copy or a file the "
             "command writes that cannot be written",
             "the message names the file or host: fix it, or retry once the other program or run is done"),
    ExitCode(EXIT_STALE, "`status` only: the last successful load is older than --max-age-hours, "
             "or there is none", "look at the last runs' logs; run a load"),
    ExitCode(EXIT_TRANSFORM, "the marts could not be built: a dbt model or test failed, or nothing is "
             "loaded yet; the loaded data is kept, the previous marts and published copy are unchanged",
             "read the failing model or test in the message (dbt's log in the pipelines folder)"),
    ExitCode(EXIT_SIGINT, "interrupted by SIGINT (Ctrl-C)", "run again: the next run ends exact"),
    ExitCode(EXIT_SIGTERM, "stopped by SIGTERM (systemd, Kubernetes, a scheduler's timeout)",
             "run again: the next run ends exact"),
)


def epilog() -> str:
    """The exit codes, one short line each, for ``certiverse --help``."""
    short = {
        EXIT_OK: "ok", EXIT_FAILURE: "unexpected failure (a bug: run with -v)",
        EXIT_CONFIG: "usage or configuration, or a purchase refused", EXIT_AUTH: "token missing or refused",
        EXIT_API: "API failure", EXIT_DESTINATION: "warehouse failure (missing or read-only folder, Postgres "
        "unreachable or refusing the login, file locked, another run)", EXIT_STALE: "data stale (status)",
        EXIT_TRANSFORM: "marts not built (dbt model or test failed)", EXIT_SIGINT: "interrupted (SIGINT)",
        EXIT_SIGTERM: "stopped (SIGTERM)",
    }
    lines = ["Exit codes (-v adds detail, tracebacks and library logs, but never changes the\ncode):"]
    lines += [textwrap.fill(f"{row.code:<5}{short[row.code]}", width=79, initial_indent="  ",
                            subsequent_indent=" " * 7) for row in EXIT_CODES]
    return "\n".join(lines)
