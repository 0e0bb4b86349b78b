"""Orchestrators for the tests: Dagster and Airflow, each in a virtual environment of its own.

Each environment is made once per machine, in ``~/.cache/certiverse-warehouse/`` (``$XDG_CACHE_HOME``
if set), from the package registry: the orchestrator's versions pinned (``PINS``) beside the
project's own dependencies and the extra's, as ``pip install 'certiverse-warehouse[dagster]'``
would put them, and ``pip check`` must pass (an orchestrator that installs only by breaking the
project's pins fails here, not in a user's scheduler). An environment is ~150-200 MB more than the
project's own and takes minutes to install, so it is shared by every checkout on the machine (the CI's
fresh clone included) and named for what is in it: a change of a pin or of the project's
dependencies makes a new one. Test workers running side by side (pytest -n) take turns on a file
lock, as ``tests/readers.py`` does for the old DuckDB client.

The project itself runs from this checkout: ``layer()`` makes a small environment per checkout that sees
the shared one's packages and holds the project installed editable (seconds, not minutes), as a user's
``pip install -e '.[dagster]'`` in the repository would.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ROOT / ".cache" / "orchestrators"

# The versions CI installs; pyproject's extras give the minor lines these were chosen from.
PINS: dict[str, tuple[str, ...]] = {
    "dagster": ("dagster==1.13.27", "dagster-webserver==1.13.27", "dagster-dbt==0.29.27"),
    "airflow": ("apache-airflow==3.3.2",),
}


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "certiverse-warehouse"


def requirements(name: str) -> list[str]:
    """What the environment for ``name`` holds: the project's dependencies, the extra's, and the pins."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"][name], *PINS[name]]


def environment(name: str) -> Path:
    """The folder of the environment for ``name`` (``dagster`` or ``airflow``), made if needed."""
    wanted = requirements(name)
    key = hashlib.sha256(json.dumps(wanted).encode()).hexdigest()[:12]
    folder = cache_dir() / f"{name}-{key}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".installed").exists():
            _make(folder, wanted)
    return folder


def _make(folder: Path, wanted: list[str]) -> None:
    venv.create(folder, with_pip=True, clear=True)
    python = str(folder / "bin" / "python")
    env = {**os.environ, "PIP_PROGRESS_BAR": "off"}
    # uv, not pip, installs the ~150 distributions: from a cold cache, on two shared cores, Dagster's
    # took 80 s with uv and 15 minutes with pip (downloads one at a time); the result is the same
    # resolution of the same pins, and pip checks it below.
    subprocess.run([sys.executable, "-m", "uv", "pip", "install", "--quiet", "--python", python, *wanted],
                   check=True, env=env)
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True, env=env)
    if check.returncode != 0:
        raise RuntimeError(f"{folder.name} does not install cleanly beside the project's pins:\n{check.stdout}")
    (folder / ".installed").write_text("\n".join(wanted) + "\n")


def layer(name: str) -> Path:
    """This checkout's environment for ``name``: a small virtual environment in ``.cache/`` that sees the
    shared one's packages (a ``.pth`` file) and holds the project installed editable from this checkout, as
    ``pip install -e '.[dagster]'`` leaves a repository. Made again when pyproject.toml or the shared
    environment changes; the orchestrator's commands (``dagster``, ``airflow``) get this environment's
    interpreter."""
    shared = environment(name)
    folder = LAYERS / name
    wanted = f"{shared.name} {hashlib.sha256((ROOT / 'pyproject.toml').read_bytes()).hexdigest()[:12]}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = folder / ".installed"
        if not marker.exists() or marker.read_text() != wanted:
            _make_layer(folder, shared)
            marker.write_text(wanted)
    return folder


def _make_layer(folder: Path, shared: Path) -> None:
    venv.create(folder, with_pip=True, clear=True)
    python = folder / "bin" / "python"
    (site_packages(folder) / "_shared_environment.pth").write_text(
        f"import site; site.addsitedir({str(site_packages(shared))!r})\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "-e", str(ROOT)], check=True, env={**os.environ, "PIP_PROGRESS_BAR": "off"})
    # venv's own setuptools (65.5 with Python 3.11) would hide the shared environment's newer one
    subprocess.run([str(python), "-m", "pip", "uninstall", "--quiet", "--yes", "setuptools"], check=True)
    check = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True)
    if check.returncode != 0:
        raise RuntimeError(f"the project does not install cleanly beside {shared.name}:\n{check.stdout}")
    # the shared environment's commands, started by this environment's interpreter
    for script in (shared / "bin").iterdir():
        target = folder / "bin" / script.name
        if target.exists() or not script.is_file():
            continue
        text = script.read_bytes()
        first, _, rest = text.partition(b"\n")
        if first.startswith(b"#!") and first.endswith((b"/python", b"/python3")):
            target.write_bytes(b"#!" + str(python).encode() + b"\n" + rest)
            target.chmod(0o755)


def site_packages(environment_dir: Path) -> Path:
    return next((environment_dir / "lib").glob("python3*/site-packages"))


def orchestrator_env(name: str, **extra: str) -> dict[str, str]:
    """Environment variables for a process of the orchestrator: this checkout's environment for it first
    on ``PATH``, telemetry off, none of the caller's project settings, the variables given."""
    folder = layer(name)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOURCES__", "DESTINATION__", "PUBLISH__", "NOTIFICATIONS__", "DAGSTER_",
                                "AIRFLOW", "DLT_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(PATH=f"{folder / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(folder),
               RUNTIME__DLTHUB_TELEMETRY="false", **extra)
    return env


def environment_size(name: str) -> int:
    """Bytes the environment takes on disk (for the notes: what an orchestrator adds)."""
    folder = environment(name)
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
