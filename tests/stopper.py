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
PURCHASES, VOUCHERS = "/api/vouchers/purchases", "/api/vouchers"
# How a run is held at a point (``stop_at``): a simulator path (its requests wait), "handlers" (the
# command's own signal handlers in place: it is starting), "table lock" (Postgres: a reader locks the
# vouchers table once the run reads, and the load waits for it), or a hold of tests/stop_child.py.
DUCKDB_HOLDS = {"starting": "handlers", "planning": PURCHASES, "reading": VOUCHERS, "loading": "load",
                "counter check": "counter_check", "dbt": "dbt", "publishing": "publish"}
POSTGRES_HOLDS = {"reading": VOUCHERS, "loading": "table lock", "counter check": "counter_check", "dbt": "dbt"}
# Points that need an earlier run: marts and a published copy to keep (DuckDB), a table to lock (Postgres).
AFTER_A_RUN = {"duckdb": ("dbt", "publishing"), "postgres": ("loading", "dbt")}


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

    def context(self) -> Any:
        """The run context a command makes of this warehouse (its own state folder, its lock)."""
        from certiverse_warehouse.pipelines.context import RunContext

        return RunContext.from_config(self.destination, self.dsn or str(self.duckdb_file),
                                      pipelines_dir=str(self.pipelines_dir))

    def pipeline(self) -> Any:
        return self.context().pipeline


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
                                   env={**os.environ, **warehouse.env(token), **(env or {})},
                                   preexec_fn=_as_a_terminal_starts_it)
    return Run(process, stderr_path)


def _as_a_terminal_starts_it() -> None:
    """SIGINT as a shell gives a command in the foreground: a test suite started in the background of a
    script (``make test &``) ignores SIGINT, its children inherit that, and Python leaves it ignored
    (docs/operators.md says so to schedulers); the tests send SIGINT as Ctrl-C would."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def leftovers(folder: Path) -> list[str]:
    """Half-built published copies left beside their targets."""
    return sorted(p.name for p in folder.iterdir() if ".building-" in p.name)


def published(warehouse: Warehouse) -> tuple[str | None, str | None]:
    """The published copy as readers see it: the load its DuckDB file says it holds, and the folder the
    Parquet link points at."""
    from certiverse_warehouse.pipelines.publishing.publish import published_info

    info = published_info(warehouse.context().publish)
    link = warehouse.root / "w_parquet"
    return (info or {}).get("load_id"), os.readlink(link) if link.is_symlink() else None


def stop_at(hold: str, signum: int, warehouse: Warehouse, app: SimulatorApp, url: str) -> Stopped:
    """Start ``certiverse run``, wait until it is held by ``hold`` (see the comment on PURCHASES), send ``signum``, and
    return how it ended; whatever held it is let go once the signal is sent."""
    if hold.startswith("/"):
        gate = Gate(app, hold)
        run = start(warehouse, url, app.token)
        run.wait_for(gate.reached.is_set, f"a request to {hold}")
        try:
            return run.stop(signum)
        finally:
            gate.open()
    if hold == "handlers":
        run = start(warehouse, url, app.token)
        run.wait_for(run.handles_signals, "the command's signal handlers")
        return run.stop(signum)
    if hold == "table lock":
        return _stop_behind_a_table_lock(signum, warehouse, app, url)
    release = warehouse.root / "release"
    run = start(warehouse, url, app.token, hold=hold, env={"STOP_CHILD_RELEASE": str(release)})
    run.wait_for(run.holding, f"the hold at {hold}")
    return run.stop(signum, then=release.touch)


def _stop_behind_a_table_lock(signum: int, warehouse: Warehouse, app: SimulatorApp, url: str) -> Stopped:
    """A reader's lock on the vouchers table, taken once the run reads (after its snapshot): the load's
    merge waits for it, inside the database, in one of dlt's load threads. Let go after the run's exit."""
    import psycopg2

    gate = Gate(app, VOUCHERS)
    run = start(warehouse, url, app.token)
    run.wait_for(gate.reached.is_set, "a request for vouchers")
    reader = psycopg2.connect(warehouse.dsn)
    try:
        with reader.cursor() as cursor:
            cursor.execute("lock table certiverse.vouchers in access exclusive mode")
        gate.open()
        run.wait_for(lambda: waiting_for_a_lock(warehouse.dsn), "the load waiting for the table lock")
        return run.stop(signum)
    finally:
        gate.open()
        reader.rollback()
        reader.close()


def waiting_for_a_lock(dsn: str) -> bool:
    """Whether a session on this database waits for a lock."""
    import psycopg2

    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute("select count(*) from pg_stat_activity where datname = current_database() "
                       "and wait_event_type = 'Lock' and pid <> pg_backend_pid()")
        return cursor.fetchone()[0] > 0
