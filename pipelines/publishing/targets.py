"""Where the published copy goes: ``[publish]`` in ``.dlt/config.toml`` or ``PUBLISH__*``, else beside the
warehouse (see ``publish.py``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dlt

from .atomic import PublishError

DEFAULT_STORAGE_VERSION = "v1.4.0"
DEFAULT_MEMORY_LIMIT = "256MB"  # DuckDB's memory while it writes the copy (see publish._settings)


@dataclass(frozen=True)
class Targets:
    """Where the published copy goes, read from ``[publish]``."""

    duckdb_file: Path | None
    parquet_dir: Path | None
    storage_version: str
    memory_limit: str = DEFAULT_MEMORY_LIMIT

    @classmethod
    def for_warehouse(cls, working_file: str | os.PathLike[str]) -> "Targets":
        """Targets for a working DuckDB file: configured paths, else siblings named after it."""
        working = Path(working_file).resolve()
        stem = working.name.removesuffix(".duckdb")
        if not _flag("publish.enabled", True):
            return cls(None, None, DEFAULT_STORAGE_VERSION)
        duckdb_file = Path(dlt.config.get("publish.duckdb_file") or working.with_name(f"{stem}_published.duckdb"))
        parquet_dir = None
        if _flag("publish.parquet", True):
            parquet_dir = Path(dlt.config.get("publish.parquet_dir") or working.with_name(f"{stem}_parquet"))
        version = str(dlt.config.get("publish.storage_version") or DEFAULT_STORAGE_VERSION)
        memory = str(dlt.config.get("publish.memory_limit") or DEFAULT_MEMORY_LIMIT)
        if duckdb_file.resolve() == working:
            raise PublishError(f"[publish] duckdb_file is the working warehouse itself ({working}): pick another file")
        return cls(duckdb_file.absolute(), parquet_dir.absolute() if parquet_dir else None, version, memory)


def _flag(key: str, default: bool) -> bool:
    value = dlt.config.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off")
    return bool(value)


def published_hint(working: str | os.PathLike[str] | None) -> str | None:
    """The published DuckDB copy of a working file, to name in a message (None: not published, or the
    ``[publish]`` settings are broken: a message about something else must not fail on them)."""
    if working is None:
        return None
    try:
        target = Targets.for_warehouse(working).duckdb_file
    except PublishError:
        return None
    return str(target) if target else None
