"""Who may touch the warehouse when: the run lock, and waiting out a DuckDB file held by someone else.

DuckDB lets many processes read a file or one process write it, never both, and
says so at once instead of waiting. An analyst with the working file open (a
notebook, the DuckDB CLI, a dashboard) would make a nightly run fail on the spot;
instead the run waits a bounded time, says what it waits for, and if the file
stays locked ends with one message naming the holder (DuckDB reports its PID)
and pointing at the published copy, which is there for readers.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

DEFAULT_LOCK_TIMEOUT = 180.0  # seconds: a query in a notebook ends; a forgotten connection does not
_LOCK_MESSAGE = re.compile(
    r"Could not set lock on file .*?Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)", re.DOTALL
)


@dataclass(frozen=True)
class LockPolicy:
    """How a command waits for a DuckDB file another process holds: for ``timeout`` seconds in all
    (``[destination.duckdb] lock_timeout``, ``--lock-timeout``), telling ``on_wait`` (default: the log)
    what it waits for."""

    timeout: float = DEFAULT_LOCK_TIMEOUT
    on_wait: Callable[[str], None] | None = None


class PipelineBusyError(RuntimeError):
    """Another run holds this pipeline."""


class WarehouseLockedError(RuntimeError):
    """The DuckDB file stayed locked by another process for the whole wait."""

    def __init__(self, path: str, holder: str, waited: float, published: str | None = None) -> None:
        super().__init__(path, holder, waited)
        self.path, self.holder, self.waited, self.published = path, holder, waited, published

    def __str__(self) -> str:
        return self.explain(self.published)

    def explain(self, published: str | None) -> str:
        """The one message, naming the published copy readers should open when it is known."""
        readers = (f"; readers should open the published copy {published} instead (read-only)" if published
                   else "; readers should open the published copy instead (see `certiverse status`)")
        return (f"the DuckDB file {self.path} is locked by {self.holder} and stayed locked for {self.waited:.0f} s: "
                f"close that connection and run again{readers}")


@contextmanager
def exclusive(path: Path, what: str) -> Iterator[None]:
    """Hold the run lock file at ``path``; a second run of ``what`` at once refuses instead of corrupting
    its state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineBusyError(f"{what} is already running (lock {path}); try again when it ends") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_holder(error: BaseException) -> str | None:
    """``PID 123 (duckdb -readonly warehouse.duckdb)`` from a DuckDB lock error in ``error``'s chain, else None."""
    seen: BaseException | None = error
    while seen is not None:
        match = _LOCK_MESSAGE.search(str(seen))
        if match:
            pid = int(match.group("pid"))
            return f"PID {pid} ({_command_line(pid) or match.group('program')})"
        seen = seen.__cause__ or seen.__context__ or getattr(seen, "exception", None)
    return None


def _command_line(pid: int) -> str | None:
    """What the holder runs, when this machine can see it (same host, /proc readable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            parts = handle.read().split(b"\0")
    except OSError:
        return None
    text = " ".join(" ".join(p.decode(errors="replace").split()) for p in parts if p)
    return (text[:120] + "...") if len(text) > 120 else text or None


def wait_until_free(
    path: str,
    *,
    read_only: bool = False,
    timeout: float | None = None,
    published: str | None = None,
    on_wait: Callable[[str], None] | None = None,
    poll: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once this process can open the DuckDB file at ``path`` (read-only or read-write).

    Waits up to ``timeout`` seconds (default :data:`DEFAULT_LOCK_TIMEOUT`), telling ``on_wait``
    (default: the log) what it waits for every ten seconds or so, then raises
    :class:`WarehouseLockedError`. A file that does not exist yet is free.
    """
    import duckdb

    timeout = DEFAULT_LOCK_TIMEOUT if timeout is None else timeout
    tell = on_wait or log.warning
    started = clock()
    last_told = None
    while True:
        if not os.path.exists(path):
            return
        try:
            duckdb.connect(path, read_only=read_only).close()
            if last_told is not None:
                tell(f"the DuckDB file {path} is free again; going on")
            return
        except duckdb.Error as exc:
            holder = lock_holder(exc)
            if holder is None:
                raise
        waited = clock() - started
        if waited >= timeout:
            raise WarehouseLockedError(path, holder, waited, published)
        if last_told is None or clock() - last_told >= 10:
            tell(f"waiting for the DuckDB file {path}: locked by {holder}; "
                 f"giving up in {timeout - waited:.0f} s")
            last_told = clock()
        sleep(min(poll, max(0.0, timeout - waited)))


def retry_when_locked(
    action: Callable[[], Any], path: str | None, policy: LockPolicy = LockPolicy(), *, read_only: bool = False,
    published: str | None = None, clock: Callable[[], float] = time.monotonic,
) -> Any:
    """Run ``action``; each time it fails because another process holds the DuckDB file, wait until the
    file is free and run it again, within the policy's timeout in all.

    Nothing is probed up front: opening the file to see whether it is free costs as much as the
    action's own open. Between dlt's steps the file is closed, so a reader can slip in at any
    step; each step's retry covers that without holding a connection for the whole run.
    """
    if path is None:
        return action()
    deadline = clock() + policy.timeout
    while True:
        try:
            return action()
        except Exception as exc:
            holder = lock_holder(exc)
            if holder is None:
                raise
            log.info("the DuckDB file %s is held by %s; waiting for it", path, holder)
        wait_until_free(path, read_only=read_only, published=published, on_wait=policy.on_wait,
                        timeout=max(0.0, deadline - clock()), clock=clock)
