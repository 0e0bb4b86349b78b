"""Putting a finished file or folder in place in one step, so that no reader sees it half-written.

A file: written beside its target, synced, then ``os.replace``d over it. A reader
that holds the old file open keeps reading the old inode, a consistent old
snapshot; a new open sees the new file. A folder cannot be renamed over a
non-empty one, so the published folder is a symbolic link to a versioned folder,
and the link is what gets replaced; the previous version stays for readers that
are still scanning it, older ones are removed.

Several targets are replaced together or not at all: :func:`signals_held` keeps SIGINT
and SIGTERM waiting for the few renames. What a process ended at once leaves beside
its targets (a half-built file or folder) is removed by the next publish
(:func:`remove_leftovers`).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

KEEP_VERSIONS = 2  # the new one, and the one a slow reader may still be scanning


class PublishError(RuntimeError):
    """A target cannot be replaced (for example a real folder where the project keeps a link)."""


def scratch_path(target: Path) -> Path:
    """Where the next version of ``target`` is built: beside it (same file system), hidden, per process."""
    return target.with_name(f".{target.name}.building-{os.getpid()}")


def remove_leftovers(target: Path) -> list[Path]:
    """Remove what publishing processes that are gone left beside ``target`` (scratch files, folders,
    links); returns what was removed."""
    removed = []
    for path in target.parent.glob(f"*.{target.name}.*building-*"):
        match = _SCRATCH.search(path.name)
        if match and not _alive(int(match.group(1))):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


_SCRATCH = re.compile(r"\.building-(\d+)(\.wal)?$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block has run, then go to the handler that was in charge.

    For replacing several targets together: a signal between two renames would leave one new and
    one old. Only the main thread can hold signals (Python runs handlers there); elsewhere this
    only yields.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    holding = [signum for signum, handler in previous.items() if handler not in (signal.SIG_IGN, None)]
    for signum in holding:
        signal.signal(signum, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for signum in holding:
            signal.signal(signum, previous[signum])  # type: ignore[arg-type]
        if held:
            handler = previous[held[0]]
            if callable(handler):
                handler(held[0], None)
            else:  # the default action: for SIGTERM, the end of the process
                signal.raise_signal(held[0])


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
