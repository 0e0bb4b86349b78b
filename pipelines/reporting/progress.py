"""A progress line on stderr every few seconds while a run extracts (the CLI's only chatter)."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from ...sources.certiverse import RequestStats

NOTE_SECONDS = 15.0  # a waiter repeats its note every ten seconds or so while it waits


class Progress:
    """Prints rows, pages and requests per endpoint, and the request rate, until stopped."""

    def __init__(self, stats: RequestStats, interval: float = 5.0, stream: TextIO = sys.stderr) -> None:
        self.stats, self.interval, self.stream = stats, interval, stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="certiverse-progress", daemon=True)
        self._started = time.monotonic()
        self._note, self._noted = "", 0.0

    def note(self, message: str) -> None:
        """Say at once what the run waits for (a locked file, ...); lines in the next seconds repeat it."""
        self._note, self._noted = message, time.monotonic()
        print(f"[{self._noted - self._started:.0f}s] {message}", file=self.stream, flush=True)

    def line(self) -> str:
        """One progress line, e.g. ``[10s] vouchers 12,300 rows/123 pages · 140 requests (14.0/s)``."""
        elapsed = time.monotonic() - self._started
        if self._note and time.monotonic() - self._noted < NOTE_SECONDS:
            return f"[{elapsed:.0f}s] {self._note}"
        counts = self.stats.as_dict()
        parts = [
            f"{endpoint} {self.stats.records[endpoint]:,} rows/{outcomes.get('200', 0):,} pages"
            for endpoint, outcomes in counts.items()
        ]
        total = self.stats.total()
        rate = total / elapsed if elapsed > 0 else 0.0
        return f"[{elapsed:.0f}s] " + ", ".join(parts or ["starting"]) + f" · {total:,} requests ({rate:.1f}/s)"

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            print(self.line(), file=self.stream, flush=True)

    def __enter__(self) -> "Progress":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
