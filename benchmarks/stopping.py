"""How long a stopped ``certiverse run`` takes to end: the time from SIGTERM to its exit, at each point.

    .venv/bin/python -m benchmarks.stopping                  # DuckDB, the small tenant
    .venv/bin/python -m benchmarks.stopping --postgres       # and Postgres (a throwaway server, as the tests start)
    .venv/bin/python -m benchmarks.stopping --signal INT     # Ctrl-C instead

In one run, for each point a fresh warehouse (after a complete run where the point needs one:
marts and a published copy to keep, a table to lock), a real ``certiverse run`` in its own process,
held at the point the way tests/test_stopping.py holds it (tests/stopper.py), the signal, and the
time until the process has exited. "how" says whether the command unwound by itself ("clean") or was
ended by the watcher after its grace ("grace"). Prints a table, writes
benchmarks/results/stopping.json, asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path

from benchmarks.run import RESULTS
from certiverse_warehouse.pipelines.cli import main as cli
from certiverse_warehouse.simulator import SimulatorApp, Tenant, serve
from tests.stopper import AFTER_A_RUN, DUCKDB_HOLDS, POSTGRES_HOLDS, Warehouse, stop_at


def measure(engine: str, point: str, hold: str, signum: int, size: str, root: Path, dsn: str | None) -> dict:
    tenant = Tenant.generate(size, seed=42)
    app = SimulatorApp(tenant)
    warehouse = Warehouse(root, dsn)
    root.mkdir(parents=True)
    with serve(app) as url:
        if point in AFTER_A_RUN[engine]:
            os.environ.update(warehouse.env(app.token))
            with contextlib.redirect_stdout(io.StringIO()):  # its summary is not what is measured
                code = cli(["run", "--base-url", url, *warehouse.args()])
            assert code == 0, f"the run before {point} failed ({code})"
        stopped = stop_at(hold, signum, warehouse, app, url)
    return {"engine": engine, "point": point, "seconds": round(stopped.seconds, 2), "code": stopped.code,
            "how": "grace" if "still stopping after" in stopped.stderr else "clean",
            "line": stopped.lines[0] if stopped.lines else "(no line)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="small", choices=("small", "default"))
    parser.add_argument("--signal", default="TERM", choices=("TERM", "INT"))
    parser.add_argument("--postgres", action="store_true", help="also on Postgres (CERTIVERSE_TEST_POSTGRES, "
                        "else a throwaway server)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    signum = getattr(signal, f"SIG{args.signal}")
    workdir = Path(tempfile.mkdtemp(prefix="certiverse-stopping-"))
    rows = [measure("duckdb", point, hold, signum, args.size, workdir / f"duckdb-{i}", None)
            for i, (point, hold) in enumerate(DUCKDB_HOLDS.items())]
    if args.postgres:
        from tests.postgres import configured_or_started

        server = configured_or_started()
        try:
            for i, (point, hold) in enumerate(POSTGRES_HOLDS.items()):
                dsn = server.create_database(f"stopping_{i}")
                rows.append(measure("postgres", point, hold, signum, args.size, workdir / f"postgres-{i}", dsn))
        finally:
            server.stop()
    print(f"SIG{args.signal} to exit, '{args.size}' tenant, load average {os.getloadavg()[0]:.1f}:")
    print("| engine | point | seconds | exit code | how |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['engine']} | {row['point']} | {row['seconds']:.2f} | {row['code']} | {row['how']} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "stopping.json").write_text(json.dumps(rows, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
