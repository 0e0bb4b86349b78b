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
from .stopping import Stop, stop_on_signals

__all__ = ["EXIT_API", "EXIT_AUTH", "EXIT_CONFIG", "EXIT_DESTINATION", "EXIT_FAILURE", "EXIT_OK", "EXIT_SIGINT",
           "EXIT_SIGTERM", "EXIT_STALE", "EXIT_TRANSFORM", "build_parser", "classify", "main"]

log = logging.getLogger("certiverse")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code. A command stopped by SIGINT or SIGTERM ends the
    process instead, with 130 or 143, once it has unwound and said what was interrupted.

    Signals are handled from the first line on (``stopping.py``): the libraries are imported
    later, by the commands, so a signal while they load is handled too.
    """
    with stop_on_signals() as stop:
        verbose, code = False, None
        try:
            args = build_parser().parse_args(argv)
            verbose = args.verbose
            code = _run(args, stop)
        except BaseException as exc:
            # Interrupted, or what a library made of it on its way up (dlt's PipelineStepFailed, dbt's
            # failed result, DuckDB's "Query interrupted"): the signal decides, not the exception.
            if stop.signum is None and not isinstance(exc, KeyboardInterrupt):
                raise
            if verbose:
                traceback.print_exception(exc)
        if stop.signum is None and code is not None:
            return code
        # Also when the command went on to the end: a library swallowed the interruption.
        print(stop.message(), file=sys.stderr, flush=True)
        return stop.exit_code


def _run(args: argparse.Namespace, stop: Stop) -> int:
    """The command's handler, with failures turned into exit codes and one line each."""
    configure_logging(args.verbose, args.progress)
    try:
        return args.handler(args)
    except Exception as exc:  # the one place that turns failures into exit codes
        if stop.signum is not None:
            raise  # an interruption on its way up, whatever a library wrapped it in
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
