"""A progress line on stderr every few seconds while a load runs (the CLI's only chatter).

It is dlt's own progress channel: a ``Collector`` given to the pipeline
(``dlt.pipeline(progress=...)``, through the run context), which dlt tells what it does as it
does it: the step (extract, normalize, load), rows per table as the source yields them, files
and jobs. Requests per endpoint come back with the result (the summary), not here.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from dlt.common.runtime.collector_base import Collector

NOTE_SECONDS = 15.0  # a waiter repeats its note every ten seconds or so while it waits


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
        self._note, self._noted = message, time.monotonic()
        print(f"[{self._noted - self._started:.0f}s] {message}", file=self.stream, flush=True)

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
        self._thread = threading.Thread(target=self._run, name="certiverse-progress", daemon=True)
        self._thread.start()

    def _stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            print(self.line(), file=self.stream, flush=True)
