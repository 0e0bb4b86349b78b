"""Other programs on the warehouse, for the tests: a reader that holds a DuckDB file open in its own
process, and an older DuckDB client installed from the package registry."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OLD_DUCKDB = "1.4"  # the oldest release the published copy promises to open
OLD_CLIENT_DIR = ROOT / ".cache" / f"duckdb-{OLD_DUCKDB}"
# pandas and pyarrow: the Parquet and pandas examples of docs/analysts.md run in this environment too.
OLD_CLIENT_PACKAGES = (f"duckdb=={OLD_DUCKDB}.*", "duckdb-cli==1.4.4", "pandas", "pyarrow")

# Answers one JSON-encoded SQL text per input line with one JSON line of rows, on the connection it
# opened at start; "exit" closes it. The connection stays open (and its lock held) in between.
_HOLDER = r"""
import json, sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == "ro")
print(json.dumps({"pid": __import__("os").getpid()}), flush=True)
for line in sys.stdin:
    sql = json.loads(line)
    if sql == "exit":
        break
    try:
        print(json.dumps({"rows": con.execute(sql).fetchall()}, default=str), flush=True)
    except Exception as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
con.close()
"""


class HeldConnection:
    """A DuckDB connection held open in another process, as an analyst's notebook or a BI tool holds one."""

    def __init__(self, path: str | os.PathLike[str], read_only: bool = True, python: str = sys.executable) -> None:
        self.process = subprocess.Popen(
            [python, "-c", _HOLDER, str(path), "ro" if read_only else "rw"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        hello = json.loads(self.process.stdout.readline() or "{}")
        if "pid" not in hello:
            self.close()
            raise RuntimeError(f"the reader could not open {path}")
        self.pid: int = hello["pid"]

    def query(self, sql: str) -> list[list[Any]]:
        self.process.stdin.write(json.dumps(sql) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["rows"]

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps("exit") + "\n")
                self.process.stdin.flush()
                self.process.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "HeldConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def old_client() -> Path:
    """A virtual environment with DuckDB 1.4 (Python package and CLI), made once and kept in .cache/.

    Test workers running side by side (pytest -n) take turns: the first makes it, the others wait.
    """
    OLD_CLIENT_DIR.parent.mkdir(parents=True, exist_ok=True)
    with open(OLD_CLIENT_DIR.parent / f"{OLD_CLIENT_DIR.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _make_old_client()


def _make_old_client() -> Path:
    python = OLD_CLIENT_DIR / "bin" / "python"
    marker = OLD_CLIENT_DIR / ".installed"
    if not marker.exists() or marker.read_text() != " ".join(OLD_CLIENT_PACKAGES):
        venv.create(OLD_CLIENT_DIR, with_pip=True, clear=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        *OLD_CLIENT_PACKAGES], check=True)
        # duckdb-cli 1.4.4 ships its binary as wheel data, which pip installs without the executable bit.
        cli = OLD_CLIENT_DIR / "bin" / "duckdb"
        cli.chmod(cli.stat().st_mode | 0o111)
        marker.write_text(" ".join(OLD_CLIENT_PACKAGES))
    return OLD_CLIENT_DIR / "bin"
