"""The dbt project's manifest, for orchestrators that describe the models before anything runs.

dagster-dbt builds its asset graph from ``manifest.json``, so the definitions cannot load before the
project is parsed. The project ships inside the package (read-only where pip put it), so the parse
goes to the warehouse's own dbt folder, with the same profile the build uses; the manifest is parsed
again only when a file of the project is newer than it. Several processes load the definitions at once
(Dagster's webserver, daemon and every step of a run): one parses under a file lock, and the manifest
is put in place with ``os.replace``, so nobody reads half a file.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
from pathlib import Path

from ..pipelines.context import RunContext
from ..pipelines.transform.profile import DATASET_TARGET, temporary_profile
from ..pipelines.transform.runner import TRANSFORMS_DIR, Dbt

log = logging.getLogger(__name__)

_NOT_PROJECT = ("target", "logs", "dbt_packages")


def manifest_path(context: RunContext, project_dir: Path = TRANSFORMS_DIR) -> Path:
    """``manifest.json`` of the dbt project for this warehouse, parsed if missing or out of date."""
    folder = context.dbt_dir / "orchestrator"
    project = hashlib.sha256(str(project_dir.resolve()).encode()).hexdigest()[:8]
    manifest = folder / f"manifest-{context.warehouse.destination}-{project}.json"
    if _fresh(manifest, project_dir):
        return manifest
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "parse.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _fresh(manifest, project_dir):  # another process may have parsed while this one waited
            _parse(context, project_dir, folder, manifest)
    return manifest


def _parse(context: RunContext, project_dir: Path, folder: Path, manifest: Path) -> None:
    log.info("parsing the dbt project %s for the orchestrator", project_dir)
    with temporary_profile(context.warehouse) as profiles_dir:
        dbt = Dbt(project_dir, profiles_dir, folder, {"certiverse_schema": context.warehouse.dataset})
        dbt.parse(DATASET_TARGET)
    scratch = manifest.with_suffix(".json.tmp")
    shutil.copyfile(dbt.target_path(DATASET_TARGET) / "manifest.json", scratch)
    os.replace(scratch, manifest)


def _fresh(manifest: Path, project_dir: Path) -> bool:
    if not manifest.exists():
        return False
    built = manifest.stat().st_mtime
    return all(p.stat().st_mtime <= built for p in _project_files(project_dir))


def _project_files(project_dir: Path) -> list[Path]:
    """The project's own files; not what dbt by hand leaves in a checkout (target/, logs/)."""
    return [p for p in project_dir.rglob("*") if p.is_file() and p.suffix in (".sql", ".yml", ".md")
            and p.relative_to(project_dir).parts[0] not in _NOT_PROJECT]
