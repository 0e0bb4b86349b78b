"""Orchestrators for the tests: Dagster and Airflow, each in a virtual environment of its own.

Each environment is made once per machine in ``.cache/`` (from the package registry, the
orchestrator's versions pinned, this checkout installed editable with the matching extra, the way
a data team installs ``certiverse-warehouse[dagster]`` beside its orchestrator), and made again
again when the pins or pyproject.toml change (pip then installs only what changed). Test workers running side by side (pytest -n) take turns:
the first makes it, the others wait on a file lock, as ``tests/readers.py`` does for the old
DuckDB client. ``pip check`` must pass: an orchestrator that installs only by breaking the
project's own pins fails here, not in a user's scheduler.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"

# The versions CI installs; pyproject's extras give the minor lines these were chosen from.
PINS: dict[str, tuple[str, ...]] = {
    "dagster": ("dagster==1.13.27", "dagster-webserver==1.13.27", "dagster-dbt==0.29.27"),
    "airflow": ("apache-airflow==3.3.2",),
}


def orchestrator_bin(name: str) -> Path:
    """The bin folder of the environment for ``name`` (``dagster`` or ``airflow``), made if needed."""
    folder = CACHE / f"orchestrator-{name}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _make(name, folder)
    return folder / "bin"


def _fingerprint(name: str) -> str:
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    return " ".join(PINS[name]) + " pyproject:" + hashlib.sha256(pyproject).hexdigest()[:16]


def _make(name: str, folder: Path) -> None:
    marker = folder / ".installed"
    wanted = _fingerprint(name)
    if marker.exists() and marker.read_text() == wanted:
        return
    python = str(folder / "bin" / "python")
    if not Path(python).exists():
        venv.create(folder, with_pip=True, clear=True)
    # Into an environment made before, pip installs what changed (the project, a new pin) and keeps the rest.
    quiet = ["--quiet", "--disable-pip-version-check"]
    subprocess.run([python, "-m", "pip", "install", *quiet, "-e", f"{ROOT}[{name}]", *PINS[name]],
                   check=True, env=_pip_env())
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True, env=_pip_env())
    if check.returncode != 0:
        raise RuntimeError(f"{name} does not install cleanly beside the project's pins:\n{check.stdout}")
    marker.write_text(wanted)


def _pip_env() -> dict[str, str]:
    # pip's own progress on a terminal slows a quiet install; nothing else differs from the caller's
    return {**os.environ, "PIP_PROGRESS_BAR": "off"}


def environment_size(name: str) -> int:
    """Bytes the environment takes on disk (for the notes: what an orchestrator adds)."""
    folder = CACHE / f"orchestrator-{name}"
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
