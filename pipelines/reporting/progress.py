"""A progress line on stderr every few seconds while a load runs (the CLI's only chatter).

It is dlt's own progress channel: a ``Collector`` given to the pipeline
(``dlt.pipeline(progress=...)``, through the run context), which dlt tells what it does as it
does it: the step (extract, normalize, load), rows per table as the source yields them, files
and jobs. Requests per endpoint come back with the result (the summary), not here.

What the run waits for comes two ways: :meth:`Progress.note` (the lock waits), and log records
that library code marks with ``WAIT_NOTE`` (the API client's rate limit and outage waits), which
the progress line repeats while a step runs.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

from dlt.common.runtime.collector_base import Collector

from ...sources.certiverse.pacing import WAIT_NOTE

NOTE_SECONDS = 15.0  # a waiter repeats its note every ten seconds or so while it waits
NOTES_FROM = "certiverse_warehouse"  # the loggers whose WAIT_NOTE records the line repeats


class Progress(Collector):
    """Prints, every ``interval`` seconds while dlt runs a step, the step and its counters
    (``[12s] Extract certiverse: vouchers 12,300 · purchases 150 (1,037 rows/s)``), and at once what
    the run waits for (:meth:`note`)."""

    def __init__(self, interval: float = 5.0, stream: TextIO = sys.stderr) -> None:
        self.interval, self.stream = interval, stream
        self.step = ""
        self._lock = threading.Lock()
        self._counters: dict[str, tuple[int, int | None]] = {}
        self._started = time.monotonic()
        self._step_started = self._started
        self._note, self._noted = "", 0.0
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._heard = _WaitNotes(self)

    def update(self, name: str, inc: int = 1, total: int | None = None, inc_total: int | None = None,
               message: str | None = None, label: str | None = None) -> None:
        """dlt's counter ``name`` (a table's rows, ``Resources``, ``Files``, ``Jobs``) moved by ``inc``."""
        if label:  # dlt's sub-counters (completed, failed): the line shows the main ones
            return
        with self._lock:
            count, known_total = self._counters.get(name, (0, None))
            if total is not None:
                known_total = total
            elif inc_total is not None and known_total is not None:
                known_total += inc_total
            self._counters[name] = (count + inc, known_total)

    def note(self, message: str) -> None:
        """Say at once what the run waits for (a locked file, ...); lines in the next seconds repeat it."""
        self.hear(message)
        print(f"[{self._noted - self._started:.0f}s] {message}", file=self.stream, flush=True)

    def hear(self, message: str) -> None:
        """What the run waits for, as logged (the log has printed it already): lines in the next seconds say it."""
        self._note, self._noted = message, time.monotonic()

    def line(self) -> str:
        """One progress line."""
        now = time.monotonic()
        elapsed = now - self._started
        if self._note and now - self._noted < NOTE_SECONDS:
            return f"[{elapsed:.0f}s] {self._note}"
        with self._lock:
            counters = dict(self._counters)
        parts = [f"{name} {count:,}" + (f"/{total:,}" if total else "") for name, (count, total) in counters.items()]
        rows = sum(count for name, (count, _) in counters.items() if name[:1].islower())  # tables, not dlt's own
        rate = f" ({rows / (now - self._step_started):,.0f} rows/s)" if rows and now > self._step_started else ""
        return f"[{elapsed:.0f}s] {self.step or 'starting'}: " + (" · ".join(parts) or "starting") + rate

    def _start(self, step: str) -> None:
        with self._lock:
            self.step, self._counters, self._step_started = step, {}, time.monotonic()
        self._done.clear()
        logging.getLogger(NOTES_FROM).addHandler(self._heard)
        self._thread = threading.Thread(target=self._run, name="certiverse-progress", daemon=True)
        self._thread.start()

    def _stop(self) -> None:
        logging.getLogger(NOTES_FROM).removeHandler(self._heard)
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            print(self.line(), file=self.stream, flush=True)


class _WaitNotes(logging.Handler):
    """Hands logged wait notes (records with ``WAIT_NOTE`` set) to the progress line."""

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, WAIT_NOTE, False):
            self.progress.hear(record.getMessage())
