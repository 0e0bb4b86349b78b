"""Which log lines reach stderr: the project's own (warnings; with --progress also what it does), and the
libraries' (dlt's own handler and format, dbt, httpx, Python's warnings) only with -v."""

from __future__ import annotations

import logging
import sys

PROJECT = ("certiverse_warehouse", "certiverse")  # the package's loggers, and the CLI's
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(verbose: bool, progress: bool) -> None:
    """Log to stderr from DEBUG (``verbose``: every library too), INFO (``progress``) or WARNING up."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Stderr)]:
        root.removeHandler(old)
    handler = _Stderr(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    if not verbose:
        handler.addFilter(_project_only)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO if progress else logging.WARNING)
    # dlt logs through a logger of its own ("dlt", its own handler and format, not propagated), set up
    # when a pipeline is first made; disabled, it stays so when dlt sets it up.
    logging.getLogger("dlt").disabled = not verbose
    # Libraries' warnings (DeprecationWarning and the like) as log records: shown with -v only.
    logging.captureWarnings(True)
    # httpx logs every request at INFO; its URLs carry no token, but they drown everything else.
    logging.getLogger("httpx").setLevel(logging.WARNING)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """The CLI's handler (replaced, not added again, when the CLI runs twice in one process)."""


def _project_only(record: logging.LogRecord) -> bool:
    return record.name.split(".", 1)[0] in PROJECT
