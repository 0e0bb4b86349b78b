"""The ``certiverse`` command: load, transform, run (load + transform), status, report, purchase, demo, simulate."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from typing import Any, Sequence

from .codes import EXIT_API, EXIT_AUTH, EXIT_CONFIG, EXIT_DESTINATION, EXIT_FAILURE, EXIT_OK, EXIT_STALE
from .parser import build_parser
from .stopping import Stop, stop_on_signals

__all__ = ["EXIT_API", "EXIT_AUTH", "EXIT_CONFIG", "EXIT_DESTINATION", "EXIT_FAILURE", "EXIT_OK", "EXIT_STALE",
           "build_parser", "classify", "main"]

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
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO if args.progress else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request at INFO; its URLs carry no token, but they drown the progress lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if getattr(args, "lock_timeout", None) is not None:
        import dlt

        dlt.config["destination.duckdb.lock_timeout"] = args.lock_timeout
    try:
        return args.handler(args)
    except Exception as exc:  # the one place that turns failures into exit codes
        if stop.signum is not None:
            raise  # an interruption on its way up, whatever a library wrapped it in
        code, message = classify(exc)
        print(f"error: {message}", file=sys.stderr)
        if args.verbose:
            raise
        return code


def classify(exc: BaseException) -> tuple[int, str]:
    """Exit code and one-line message for a failure, looking through dlt's wrappers for the cause."""
    from dlt.common.configuration.exceptions import ConfigFieldMissingException

    from ...sources.certiverse import ApiUnavailableError, AuthError, CertiverseError, ConfigurationError
    from ..locks import WarehouseLockedError, lock_holder
    from ..publishing import PublishError, published_hint

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AuthError):
            return EXIT_AUTH, str(seen)
        if isinstance(seen, ConfigurationError):
            return EXIT_CONFIG, str(seen)
        if isinstance(seen, ConfigFieldMissingException):
            return _missing_config(seen)
        if isinstance(seen, WarehouseLockedError):
            return EXIT_DESTINATION, seen.explain(seen.published or published_hint(seen.path))
        if isinstance(seen, PublishError):
            return EXIT_DESTINATION, str(seen)
        if isinstance(seen, (ApiUnavailableError, CertiverseError)):
            return EXIT_API, str(seen)
        seen = seen.__cause__ or seen.__context__ or getattr(seen, "exception", None)
    from dlt.pipeline.exceptions import PipelineStepFailed

    holder = lock_holder(exc)
    if holder:
        return EXIT_DESTINATION, (f"the DuckDB file is locked by {holder}: close that connection and run again; "
                                  "readers should open the published copy instead (see `certiverse status`)")
    if isinstance(exc, PipelineStepFailed) and exc.step in ("load", "sync", "normalize"):
        return EXIT_DESTINATION, f"{exc.step} step failed: {exc.exception}"
    return EXIT_FAILURE, f"{type(exc).__name__}: {exc}"


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


def _missing_config(exc: Any) -> tuple[int, str]:
    for field in exc.fields:
        if field in _MISSING:
            code, message = _MISSING[field]
            return code, message + " (-v shows where dlt looked)"
    return EXIT_CONFIG, (f"missing configuration {', '.join(exc.fields)} of {exc.spec_name} "
                         "(-v shows where dlt looked)")
