"""Installed the way platforms install it: a wheel, `pip install` (not editable), a fresh virtual
environment, run from a folder that is not the checkout.

The wheel is built from this checkout, installed with its dependencies from the package
registry (pip's cache makes that quick after the first time), and the demo runs in an empty
temporary folder: the marts and the published copy must exist there, and nothing may be written
into site-packages while it runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parent.parent
MARTS = ("voucher_utilization", "voucher_expiry", "partner_utilization", "program_utilization", "expiry_calendar")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools writes build/ and *.egg-info into the tree it builds.
    source = tmp_path_factory.mktemp("source") / "certiverse-warehouse"
    shutil.copytree(ROOT, source, ignore=_not_shipped)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
                   check=True, cwd=out)
    (built,) = out.glob("certiverse_warehouse-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed; returns its bin folder."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=True)
    pip = env_dir / "bin" / "pip"
    subprocess.run([str(pip), "install", "--quiet", "--disable-pip-version-check", str(wheel)], check=True)
    return env_dir / "bin"


def test_the_wheel_installs_one_top_level_package_and_ships_the_dbt_project(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"certiverse_warehouse"}
    shipped = {name.removeprefix("certiverse_warehouse/transforms/") for name in names
               if name.startswith("certiverse_warehouse/transforms/")}
    in_checkout = {str(p.relative_to(ROOT / "transforms")) for p in (ROOT / "transforms").rglob("*")
                   if p.is_file() and p.suffix in (".sql", ".yml", ".md")
                   and p.relative_to(ROOT / "transforms").parts[0] not in ("target", "logs", "dbt_packages")}
    assert in_checkout and in_checkout <= shipped


def test_the_installed_command_runs_the_demo_from_another_folder(installed: Path, tmp_path: Path) -> None:
    site_packages = next((installed.parent / "lib").glob("python3*/site-packages"))
    before = _files(site_packages)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__", "PUBLISH__"))}
    env.update(RUNTIME__DLTHUB_TELEMETRY="false", PYTHONDONTWRITEBYTECODE="1")

    version = subprocess.run([str(installed / "certiverse"), "--version"], capture_output=True, text=True,
                             cwd=folder, env=env, check=True)
    demo = subprocess.run([str(installed / "certiverse"), "demo", "--size", "small"], capture_output=True,
                          text=True, cwd=folder, env=env)

    assert version.stdout.startswith("certiverse ")
    assert demo.returncode == 0, demo.stderr
    with duckdb.connect(str(folder / "certiverse_demo.duckdb"), read_only=True) as con:
        marts = {name for (name,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'certiverse'").fetchall()}
    assert set(MARTS) <= marts
    with duckdb.connect(str(folder / "certiverse_demo_published.duckdb"), read_only=True) as con:
        published = {name for (name,) in con.execute("select table_name from information_schema.tables").fetchall()}
    assert set(MARTS) <= published
    assert (folder / "certiverse_demo_parquet" / "voucher_utilization.parquet").exists()
    assert _files(site_packages) == before, "the run wrote into site-packages"


def _not_shipped(folder: str, names: list[str]) -> set[str]:
    """What a copy of the checkout to build from can leave out: caches, warehouses, dbt's output."""
    left_out = shutil.ignore_patterns(".git", ".venv", ".cache", ".certiverse", "build", "*.egg-info", "*.duckdb",
                                      "*.duckdb.wal", "target", "logs", "__pycache__")(folder, names)
    if Path(folder) == ROOT:
        left_out |= {"tests", "benchmarks", "docs"} & set(names)
    return left_out


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}
