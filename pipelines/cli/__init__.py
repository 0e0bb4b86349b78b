"""The ``certiverse`` command: load, transform, run (load + transform), status, report, purchase, demo, simulate."""

from __future__ import annotations

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
from .parser import build_parser

__all__ = ["EXIT_API", "EXIT_AUTH", "EXIT_CONFIG", "EXIT_DESTINATION", "EXIT_FAILURE", "EXIT_OK", "EXIT_SIGINT",
           "EXIT_SIGTERM", "EXIT_STALE", "EXIT_TRANSFORM", "build_parser", "classify", "main"]

log = logging.getLogger("certiverse")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except Exception as exc:  # the one place that turns failures into exit codes
        code, message = classify(exc)
        if args.verbose:
            # detail for a person reading the log; the code stays the contract's (codes.py)
            traceback.print_exception(exc, file=sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        return code
