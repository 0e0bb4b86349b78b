"""Stopping a real ``certiverse run`` at a chosen point, for tests/test_stopping.py and benchmarks/stopping.py.

A run is held at its point without timing guesses: by the simulator (a request that is not
answered until released: the run is then reading that endpoint, with requests in flight), by the
database (a table lock: the load waits for it), or by tests/stop_child.py (a slow statement in the
step, announced on stderr). Once held, the signal goes to the process and the time to its exit is
measured.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from certiverse_warehouse.simulator import SimulatorApp

CLI = Path(sys.executable).with_name("certiverse")
CHILD = Path(__file__).with_name("stop_child.py")
INTERRUPTED = "certiverse: interrupted by "


class Gate:
    """Holds the simulator's answers to one endpoint (``path``) until :meth:`open`; ``reached`` once one waits."""

    def __init__(self, app: SimulatorApp, path: str) -> None:
        self.reached, self._open = threading.Event(), threading.Event()
        handle = app.handle

        def gated(method: str, url: str, headers: dict[str, str], body: bytes) -> Any:
            if urlsplit(url).path == path and not self._open.is_set():
                self.reached.set()
                self._open.wait(300)
            return handle(method, url, headers, body)

        app.handle = gated  # type: ignore[method-assign]

    def open(self) -> None:
        self._open.set()


@dataclass
class Warehouse:
    """Where one test's runs write: a DuckDB file, or a Postgres database (``dsn``)."""

    root: Path
    dsn: str | None = None

    @property
    def destination(self) -> str:
        return "postgres" if self.dsn else "duckdb"

    @property
    def duckdb_file(self) -> Path:
        return self.root / "w.duckdb"

    @property
    def pipelines_dir(self) -> Path:
        return self.root / "p"

    def args(self) -> list[str]:
        where = ["--duckdb-file", str(self.duckdb_file)] if self.dsn is None else []
        return ["--destination", self.destination, "--pipelines-dir", str(self.pipelines_dir), *where]

    def env(self, token: str) -> dict[str, str]:
        """What a run needs besides its arguments, the dlt way."""
        env = {"SOURCES__CERTIVERSE__API_TOKEN": token, "RUNTIME__DLTHUB_TELEMETRY": "false"}
        if self.dsn:
            env["DESTINATION__POSTGRES__CREDENTIALS"] = self.dsn
        return env

    def pipeline(self) -> Any:
        from certiverse_warehouse.pipelines.load import make_pipeline

        return make_pipeline(self.destination, self.dsn or str(self.duckdb_file), pipelines_dir=str(self.pipelines_dir))


@dataclass
class Run:
    """A ``certiverse run`` in its own process; its stderr goes to a file."""

    process: subprocess.Popen
    stderr_path: Path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
        """Until ``condition`` holds; fails if the run ends or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"the run ended ({self.process.returncode}) before {what}:\n{self.stderr[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:.0f} s:\n{self.stderr[-3000:]}")
            time.sleep(0.02)

    def holding(self) -> bool:
        """Whether tests/stop_child.py said the run reached its hold."""
        return "HOLDING " in self.stderr

    def handles_signals(self) -> bool:
        """Whether the command's own SIGTERM handler is in place (Python alone never catches SIGTERM)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return False
        caught = next(int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:"))
        return bool(caught >> (signal.SIGTERM - 1) & 1)

    def stop(self, signum: int, then: Callable[[], None] | None = None, timeout: float = 120) -> "Stopped":
        """Send ``signum``, call ``then`` (e.g. release a hold), and wait for the exit; the time is from the signal."""
        sent = time.monotonic()
        self.process.send_signal(signum)
        if then is not None:
            then()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"still running {timeout:.0f} s after {signal.Signals(signum).name}:\n"
                                 f"{self.stderr[-3000:]}") from None
        return Stopped(code, time.monotonic() - sent, self.stderr)


@dataclass
class Stopped:
    """How a stopped run ended: its exit code, seconds from the signal to its exit, its stderr."""

    code: int
    seconds: float
    stderr: str

    @property
    def lines(self) -> list[str]:
        """The lines that say the command was interrupted."""
        return [line for line in self.stderr.splitlines() if line.startswith(INTERRUPTED)]


def start(warehouse: Warehouse, url: str, token: str, hold: str | None = None,
          env: dict[str, str] | None = None) -> Run:
    """``certiverse run`` against the simulator at ``url``; held by tests/stop_child.py when ``hold`` is given."""
    args = ["run", "--base-url", url, *warehouse.args()]
    command = [str(CLI), *args] if hold is None else [sys.executable, str(CHILD), hold, *args]
    stderr_path = warehouse.root / f"stderr-{time.monotonic_ns()}.txt"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(command, cwd=warehouse.root, stdout=subprocess.DEVNULL, stderr=stderr,
                                   env={**os.environ, **warehouse.env(token), **(env or {})})
    return Run(process, stderr_path)


def leftovers(folder: Path) -> list[str]:
    """Half-built published copies left beside their targets."""
    return sorted(p.name for p in folder.iterdir() if ".building-" in p.name)


def published(warehouse: Warehouse) -> tuple[str | None, str | None]:
    """The published copy as readers see it: the load its DuckDB file says it holds, and the folder the
    Parquet link points at."""
    from certiverse_warehouse.pipelines.publishing.publish import published_info

    info = published_info(warehouse.duckdb_file)
    link = warehouse.root / "w_parquet"
    return (info or {}).get("load_id"), os.readlink(link) if link.is_symlink() else None
