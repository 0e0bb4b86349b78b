"""Putting a finished file or folder in place in one step, so that no reader sees it half-written.

A file: written beside its target, synced, then ``os.replace``d over it. A reader
that holds the old file open keeps reading the old inode, a consistent old
snapshot; a new open sees the new file. A folder cannot be renamed over a
non-empty one, so the published folder is a symbolic link to a versioned folder,
and the link is what gets replaced; the previous version stays for readers that
are still scanning it, older ones are removed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

KEEP_VERSIONS = 2  # the new one, and the one a slow reader may still be scanning


class PublishError(RuntimeError):
    """A target cannot be replaced (for example a real folder where the project keeps a link)."""


def scratch_path(target: Path) -> Path:
    """Where the next version of ``target`` is built: beside it (same file system), hidden, per process."""
    return target.with_name(f".{target.name}.building-{os.getpid()}")


def replace_file(built: Path, target: Path) -> None:
    """Move ``built`` over ``target`` atomically, after its bytes are on disk."""
    _fsync(built)
    os.replace(built, target)
    _fsync_dir(target.parent)


def version_dir(target: Path, version: str) -> Path:
    """The versioned folder a published folder link points at."""
    return target.with_name(f".{target.name}.{version}")


def replace_dir_link(built: Path, target: Path) -> None:
    """Point the link ``target`` at the folder ``built`` (a sibling) atomically; prune old versions."""
    if target.exists() and not target.is_symlink():
        raise PublishError(
            f"{target} is a real folder, but this project publishes Parquet there as a link to versioned "
            "folders: move it away (or set [publish] parquet_dir elsewhere)"
        )
    for path in built.iterdir():
        _fsync(path)
    _fsync_dir(built)
    link = scratch_path(target)
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(built.name, link)
    os.replace(link, target)
    _fsync_dir(target.parent)
    _prune(target, keep=built.name)


def _prune(target: Path, keep: str) -> None:
    prefix = f".{target.name}."
    versions = sorted(
        (p for p in target.parent.iterdir() if p.name.startswith(prefix) and p.is_dir() and not p.is_symlink()
         and ".building-" not in p.name),
        key=lambda p: p.stat().st_mtime,
    )
    stale = [p for p in versions if p.name != keep][: max(0, len(versions) - KEEP_VERSIONS)]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
