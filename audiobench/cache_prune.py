"""Remove what the cache holds but no run has used for a while (``audiobench cache prune``).

Every cached output can be computed again, so pruning costs time, never a number. What counts as used:

* a shard store (embeddings, frame embeddings, teacher logits, decoded audio): the mtime of its ``store.lock``,
  which every process reading or writing the store renews (at most once a minute,
  :func:`audiobench.shards._mark_used`); stores made before that mark existed fall back to their newest file;
* a probe-output entry (one split's scores, :mod:`audiobench.protocols.split_cache`): its mtime, renewed on
  every reuse;
* an on-disk feature matrix (``features/``; a run removes its own when done, so one left here is from an
  interrupted run): its newest file.

A store is removed while holding its lock exclusively, so a run using it at that moment is never cut off:
such a store is kept and named. Downloaded checkpoints and datasets are never pruned.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from audiobench.shard_compaction import find_stores
from audiobench.shards import LOCK_FILE

SPLIT_CACHE = "probe-outputs"
FEATURE_MATRICES = "features"
REMOVED, WOULD_REMOVE, IN_USE = "removed", "would be removed", "kept: in use by a run"


@dataclass
class PruneItem:
    """One thing pruning looked at: where, what kind, its bytes, its last use (seconds since the epoch) and
    what happened to it."""

    path: Path
    kind: str
    nbytes: int
    last_used: float
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path)}


def _files(directory: Path) -> Iterator[os.stat_result]:
    for path in directory.rglob("*"):
        try:
            if path.is_file():
                yield path.stat()
        except OSError:  # removed meanwhile
            continue


def _bytes_and_newest(directory: Path) -> tuple[int, float]:
    stats = list(_files(directory))
    return sum(s.st_size for s in stats), max((s.st_mtime for s in stats), default=0.0)


def store_last_used(directory: Path) -> float:
    """When a run last used the store in ``directory`` (see the module docstring)."""
    try:
        return (directory / LOCK_FILE).stat().st_mtime
    except OSError:
        return _bytes_and_newest(directory)[1]


def _remove_store(directory: Path) -> bool:
    """Remove the store unless a run holds its lock now (False then)."""
    try:
        descriptor = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        shutil.rmtree(directory, ignore_errors=True)
        return True
    finally:
        os.close(descriptor)


def _stores(root: Path, cutoff: float, dry_run: bool) -> list[PruneItem]:
    items = []
    for directory in find_stores(root):
        last = store_last_used(directory)
        if last >= cutoff:
            continue
        nbytes = _bytes_and_newest(directory)[0]
        outcome = WOULD_REMOVE if dry_run else (REMOVED if _remove_store(directory) else IN_USE)
        items.append(PruneItem(directory, "store", nbytes, last, outcome))
    return items


def _split_entries(root: Path, cutoff: float, dry_run: bool) -> list[PruneItem]:
    items = []
    for path in sorted((root / SPLIT_CACHE).glob("*/*.npz")):
        try:
            stat = path.stat()
        except OSError:
            continue
        if stat.st_mtime >= cutoff:
            continue
        if not dry_run:
            path.unlink(missing_ok=True)
            if not any(path.parent.iterdir()):
                path.parent.rmdir()
        items.append(PruneItem(path, "probe outputs", stat.st_size, stat.st_mtime,
                               WOULD_REMOVE if dry_run else REMOVED))
    return items


def _feature_matrices(root: Path, cutoff: float, dry_run: bool) -> list[PruneItem]:
    items = []
    folder = root / FEATURE_MATRICES
    for directory in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
        nbytes, newest = _bytes_and_newest(directory)
        if newest >= cutoff:
            continue
        if not dry_run:
            shutil.rmtree(directory, ignore_errors=True)
        items.append(PruneItem(directory, "feature matrix", nbytes, newest, WOULD_REMOVE if dry_run else REMOVED))
    return items


def prune(root: Path, unused_for_s: float, dry_run: bool = False, now: float | None = None) -> list[PruneItem]:
    """Remove (or with ``dry_run`` only list) every store, probe-output entry and feature matrix under the
    cache ``root`` that no run has used for ``unused_for_s`` seconds."""
    if unused_for_s < 0:
        raise ValueError(f"unused_for_s must be >= 0, got {unused_for_s}")
    root = Path(root)
    cutoff = (time.time() if now is None else now) - unused_for_s
    return [*_stores(root, cutoff, dry_run), *_split_entries(root, cutoff, dry_run),
            *_feature_matrices(root, cutoff, dry_run)]
