"""The ``certiverse`` command: load, transform, run (load + transform), status, report, purchase, demo, simulate."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import Sequence

from .codes import (
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
)
from .failures import classify
from .logs import configure_logging
from .parser import build_parser

__all__ = ["EXIT_API", "EXIT_AUTH", "EXIT_CONFIG", "EXIT_DESTINATION", "EXIT_FAILURE", "EXIT_OK", "EXIT_SIGINT",
           "EXIT_SIGTERM", "EXIT_STALE", "EXIT_TRANSFORM", "build_parser", "classify", "main"]

log = logging.getLogger("certiverse")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.progress)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except Exception as exc:  # the one place that turns failures into exit codes
        code, message = classify(exc)
        _fail(args, exc, code, message)
        return code


def _fail(args: argparse.Namespace, exc: BaseException, code: int, message: str) -> None:
    """Say the failure on stderr (with -v its traceback too) and to the webhook, without any secret."""
    from ..notifications import Webhook, configured_secrets, failure_notice, redact

    secrets = configured_secrets()
    message = redact(message, secrets)
    if args.verbose:
        # detail for a person reading the log; the code stays the contract's (codes.py)
        print(redact("".join(traceback.format_exception(exc)), secrets), end="", file=sys.stderr)
    print(f"error: {message}", file=sys.stderr, flush=True)
    Webhook.from_configuration(secrets).send(failure_notice(command_name(args), code, message, warehouse_name(args)))


def command_name(args: argparse.Namespace) -> str:
    """The command as typed: ``run``, ``purchase create``."""
    return " ".join(part for part in (args.command, getattr(args, "purchase_command", None)) if part)


def warehouse_name(args: argparse.Namespace) -> str:
    """The warehouse a command worked on, for a message: the DuckDB file, or Postgres' host and database (never
    its password); best effort, since the failure may be that it cannot be configured."""
    import dlt

    if not hasattr(args, "destination"):
        return "no warehouse"
    if args.destination == "duckdb":
        target = args.duckdb_file or dlt.secrets.get("destination.duckdb.credentials") or "warehouse.duckdb"
        return os.path.abspath(target) if isinstance(target, str) else "a DuckDB file"
    try:
        from dlt.common.configuration.specs import ConnectionStringCredentials

        c = ConnectionStringCredentials(dlt.secrets.get("destination.postgres.credentials"))
        return f"postgresql://{c.username}@{c.host}:{c.port or 5432}/{c.database}"
    except Exception:  # no or unreadable credentials: the failure itself says so
        return "Postgres (not configured)"
