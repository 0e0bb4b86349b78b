"""The ``certiverse`` command: load, transform, run (load + transform), status, report, purchase, demo, simulate."""

from __future__ import annotations

import argparse
import logging
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
    """The warehouse a command worked on, for a message: the DuckDB file, or Postgres' host, database and dataset
    (never its password); best effort, since the failure may be that it cannot be configured."""
    destination = getattr(args, "destination", "duckdb" if hasattr(args, "duckdb_file") else None)
    if destination is None:
        return "no warehouse"
    try:
        from ..context import Warehouse

        return Warehouse.from_config(destination, args.duckdb_file if destination == "duckdb" else None).name
    except Exception:  # the failure itself says what is wrong with it
        return f"{destination} (not configured)"
