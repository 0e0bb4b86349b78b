"""The ``certiverse`` command: load, transform, run (load + transform), status, report, purchase, demo, simulate."""

from __future__ import annotations

import logging
import sys
from typing import Any, Sequence

from .codes import EXIT_API, EXIT_AUTH, EXIT_CONFIG, EXIT_DESTINATION, EXIT_FAILURE, EXIT_OK, EXIT_STALE
from .logs import configure_logging
from .parser import build_parser

__all__ = ["EXIT_API", "EXIT_AUTH", "EXIT_CONFIG", "EXIT_DESTINATION", "EXIT_FAILURE", "EXIT_OK", "EXIT_STALE",
           "build_parser", "classify", "main"]

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
        return 130
    except Exception as exc:  # the one place that turns failures into exit codes
        code, message = classify(exc)
        print(f"error: {message}", file=sys.stderr)
        if args.verbose:
            raise
        return code


def classify(exc: BaseException) -> tuple[int, str]:
    """Exit code and one-line message for a failure, looking through dlt's wrappers for the cause."""
    # imported here: `certiverse --help` answers without loading dlt
    from dlt.common.configuration.exceptions import ConfigFieldMissingException

    from ...sources.certiverse import ApiUnavailableError, AuthError, CertiverseError, ConfigurationError
    from ..locks import WarehouseLockedError, lock_holder
    from ..publishing import PublishError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, AuthError):
            return EXIT_AUTH, str(seen)
        if isinstance(seen, ConfigurationError):
            return EXIT_CONFIG, str(seen)
        if isinstance(seen, ConfigFieldMissingException):
            return _missing_config(seen)
        if isinstance(seen, WarehouseLockedError):
            return EXIT_DESTINATION, str(seen)
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
