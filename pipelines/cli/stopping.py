"""Stopping a command on SIGINT or SIGTERM: within seconds, cleaned up, with one line and 130 or 143.

Schedulers (systemd, Airflow, Kubernetes, cron wrappers) stop a job with SIGTERM, people with
Ctrl-C (SIGINT). Left to Python, SIGTERM ends the process on the spot, skipping the ``finally``
blocks that put the marts back, remove a half-built published copy and release the run lock;
SIGINT raises ``KeyboardInterrupt`` wherever the main thread is, and the libraries turn it into
something else on its way up: dlt wraps it (``PipelineStepFailed``), dbt's runner returns it as a
failed result, DuckDB may answer "Query interrupted", and dlt's own handler (installed around its
normalize and load steps) only records the signal and forgets it when the step ends.

While a command runs, :func:`stop_on_signals`:

* on the first signal raises :class:`Interrupted` (a ``KeyboardInterrupt``, so dbt cancels its
  queries) in the main thread, which unwinds through its ``finally`` blocks (a database statement
  the main thread is in, DuckDB's or Postgres', ends first: Python handles the signal after it); the :class:`Stop` it yields keeps the signal and what the command was doing, whatever
  the exception became on its way up, so the command ends with 128 + the signal's number
  (130 for SIGINT, 143 for SIGTERM) and one line saying what was interrupted;
* a watcher thread hears every signal at once (through ``signal.set_wakeup_fd``), even while the
  main thread is inside a database call Python cannot interrupt: a second signal, or a process
  still running ``grace`` seconds after the first, ends the process at once (``os._exit``), with
  the same codes. What that skips is what ``kill -9`` skips, which the project survives: the next
  run puts back set-aside marts, drops the Postgres build schema, finishes dlt's pending packages
  and removes what a half-built published copy left.

Once a stop signal came, the process is ending: when the block has unwound, the process ends at
once with the exit code, flushing stdout and stderr but skipping the interpreter's teardown. That
teardown took 1-2 s with dlt, DuckDB and Arrow loaded (measured on a busy two-core machine), and it
would wait for threads a library left behind: dlt gives up joining its load threads after two
seconds, and one inside a statement that waits for a lock waits as long as the lock is held.

A SIGINT that was ignored when the command started (a background job of a non-interactive shell,
``nohup``) stays ignored, as Python itself leaves it.
"""

from __future__ import annotations

import _thread
import os
import select
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long the command may take to unwind after the first signal before it is ended at once. The
# unwinding itself takes well under a second (see docs/operators.md); what can outlast it is a
# database statement Python cannot interrupt (a Postgres statement waiting for a lock, a load job
# dlt waits for), and schedulers' own kill timeouts are 30 s (Kubernetes) or 90 s (systemd).
GRACE_SECONDS = 10.0
_QUIT, _AGAIN = 0, 255  # bytes for the watcher: end; raise the interruption again. Never signal numbers.


class Interrupted(KeyboardInterrupt):
    """A stop signal arrived; raised in the main thread where it was."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


@dataclass
class Stop:
    """The signal that stopped the command (None while none came) and what the command was doing."""

    signum: int | None = None
    doing: str | None = None

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, the shell's convention: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + (self.signum or signal.SIGINT)

    def message(self, outcome: str = "the next run picks up where the last complete run left off") -> str:
        """The one line the command prints when it stops."""
        name = signal.Signals(self.signum or signal.SIGINT).name
        doing = f" while {self.doing}" if self.doing else ""
        return f"certiverse: interrupted by {name}{doing}; {outcome}"


@contextmanager
def stop_on_signals(grace: float = GRACE_SECONDS) -> Iterator[Stop]:
    """Handle SIGINT and SIGTERM as the module says while the block runs; yields the :class:`Stop`.

    When a stop signal came, leaving the block ends the process with the stop's exit code (the
    block says what was interrupted first). Outside the main thread (where Python cannot install
    handlers) this only yields.
    """
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    handlers = _Handlers(stop, grace)
    handlers.install()
    try:
        yield stop
    finally:
        if stop.signum is not None:
            _end_process(stop.exit_code)
        handlers.uninstall()


class _Handlers:
    """The main thread's handler, the watcher thread, and the wakeup pipe between the signal and it."""

    def __init__(self, stop: Stop, grace: float) -> None:
        self.stop, self.grace = stop, grace
        self._lock = threading.Lock()
        self._raised = False
        self._again = 0  # signals this process raised itself (see _on_unraisable), not the world's
        self._previous: dict[int, object] = {}
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._previous_wakeup = -1
        self._watcher = threading.Thread(target=self._watch, name="certiverse-signals", daemon=True)

    def install(self) -> None:
        self._watcher.start()
        # C-level: every signal that has a Python handler writes its number here, at once.
        self._previous_wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if signum == signal.SIGINT and previous == signal.SIG_IGN:
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._on_signal)
        self._previous_unraisable = sys.unraisablehook
        sys.unraisablehook = self._on_unraisable

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        signal.set_wakeup_fd(self._previous_wakeup)
        sys.unraisablehook = self._previous_unraisable
        try:
            os.write(self._write_fd, bytes([_QUIT]))
        except BlockingIOError:  # the pipe is full of signal numbers: the watcher is busy with them
            pass
        self._watcher.join(timeout=5)
        os.close(self._write_fd)
        os.close(self._read_fd)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        """The main thread's handler: the first signal raises Interrupted there; later ones are the watcher's."""
        self._note(signum, frame)
        with self._lock:
            if self._raised:
                return
            if _within(frame, _Handlers._on_unraisable):  # raised there, it would be dropped too
                self._again += 1
                os.write(self._write_fd, bytes([_AGAIN]))
                return
            self._raised = True
        raise Interrupted(signum)

    def _on_unraisable(self, unraisable: Any) -> None:
        """Python runs the handler wherever the main thread is, also in a weakref callback or a
        ``__del__`` (imports and garbage collection run them), and drops what they raise: then the
        watcher raises the interruption again, in the code that runs next (not from here: this hook's
        own exceptions are dropped too)."""
        if not isinstance(unraisable.exc_value, Interrupted):
            self._previous_unraisable(unraisable)
            return
        with self._lock:
            self._raised = False
            self._again += 1
            os.write(self._write_fd, bytes([_AGAIN]))

    def _note(self, signum: int, frame: FrameType | None) -> None:
        with self._lock:
            if self.stop.signum is None:
                self.stop.signum, self.stop.doing = signum, describe(frame)

    def _watch(self) -> None:
        first: float | None = None
        while True:
            timeout = None if first is None else max(0.0, first + self.grace - time.monotonic())
            ready, _, _ = select.select([self._read_fd], [], [], timeout)
            if not ready:
                self._exit_now(f"still stopping after {self.grace:.0f} s: exiting without waiting any longer")
            for signum in os.read(self._read_fd, 64):
                if signum == _QUIT:
                    return
                if signum == _AGAIN:
                    _thread.interrupt_main(self.stop.signum or signal.SIGINT)  # counted in _again
                    continue
                if signum not in STOP_SIGNALS:
                    continue
                with self._lock:
                    again, self._again = self._again > 0, max(0, self._again - 1)
                if again:
                    continue
                if first is not None:
                    self.stop.signum = signum
                    self._exit_now("a second signal: exiting at once")
                first = time.monotonic()
                self._note(signum, _main_frame())

    def _exit_now(self, why: str) -> None:
        """End the process from the watcher thread: no lock taken, no buffered stream touched."""
        line = self.stop.message(f"{why} (the next run picks up where the last complete run left off)")
        try:
            os.write(sys.stderr.fileno(), (line + "\n").encode())
        except (OSError, ValueError):
            pass
        os._exit(self.stop.exit_code)


def _end_process(code: int) -> None:
    """The stopped command has unwound: end the process now (see the module's docstring)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _within(frame: FrameType | None, function: Any) -> bool:
    while frame is not None:
        if frame.f_code is function.__code__:
            return True
        frame = frame.f_back
    return False


def _main_frame() -> FrameType | None:
    return sys._current_frames().get(threading.main_thread().ident or 0)


# What a command is doing, told by the functions on the main thread's stack (``module.function``,
# matched by prefix): the first row that matches any frame wins, so the more specific steps come
# first (dbt runs inside the transform, the counter check's repair is a dlt load of its own, the
# purchases are read inside the source, every step may wait for the DuckDB file).
_DOING = (
    (("dbt.", "certiverse_warehouse.pipelines.transform."), "building the marts (dbt)"),
    (("certiverse_warehouse.pipelines.publishing.",), "publishing the copy for readers"),
    (("certiverse_warehouse.pipelines.load.counters.", "certiverse_warehouse.pipelines.load.run._check_counters"),
     "checking purchases against the API's counters"),
    (("certiverse_warehouse.pipelines.locks.wait_until_free",), "waiting for the DuckDB file"),
    (("dlt.load.",), "loading into the warehouse"),
    (("dlt.normalize.",), "normalizing what was read"),
    (("certiverse_warehouse.sources.certiverse.catalog.",), "planning: reading partners, programs and purchases"),
    (("certiverse_warehouse.sources.certiverse.planning.",), "planning the voucher read"),
    (("certiverse_warehouse.sources.certiverse.",), "reading vouchers from the API"),
    (("certiverse_warehouse.pipelines.load.warehouse.",), "comparing local state with the warehouse"),
    (("certiverse_warehouse.pipelines.load.snapshot.",), "reading the warehouse's snapshot"),
    (("dlt.extract.",), "reading from the API"),
    (("dlt.",), "syncing state with the warehouse"),
    (("certiverse_warehouse.pipelines.load.run._after_load",), "recording the load's figures"),
    (("certiverse_warehouse.pipelines.reporting.headlines.",), "reading the headline figures"),
    (("certiverse_warehouse.pipelines.reporting.",), "reporting"),
)
STARTING = "starting"
_COMMANDS = "certiverse_warehouse.pipelines.cli.commands."


def describe(frame: FrameType | None) -> str | None:
    """What the command was doing, from the main thread's stack at the signal (None if not known).

    The stack is the one record of where a signal struck that needs nothing from the steps
    themselves: it can strike inside dlt, dbt or DuckDB, which report nothing to this project.
    Frames of a module being imported say nothing about the step that imports it; only the
    frames outside the outermost import count. A command that is not in a known step is starting
    while it imports or has not reached its handler (parsing its arguments, setting up logging).
    """
    functions: list[str] = []  # module.function, innermost first
    importing = False
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            functions.clear()  # everything inside it belongs to the import
            importing = True
        functions.append(f"{frame.f_globals.get('__name__')}.{frame.f_code.co_name}")
        frame = frame.f_back
    for prefixes, doing in _DOING:
        if any(function.startswith(prefixes) for function in functions):
            return doing
    if importing or not any(function.startswith(_COMMANDS) for function in functions):
        return STARTING
    return None


__all__ = ["GRACE_SECONDS", "STARTING", "STOP_SIGNALS", "Interrupted", "Stop", "describe", "stop_on_signals"]
