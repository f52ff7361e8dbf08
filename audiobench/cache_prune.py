"""Remove what the cache holds but no run has used for a while (``audiobench cache prune``).

Every cached output can be computed again, so pruning costs time, never a number. What counts as used:

* a shard store (embeddings, frame embeddings, teacher logits, decoded audio): the mtime of its ``store.lock``,
  which every process reading or writing the store renews (at most once a minute,
  :func:`audiobench.shards._mark_used`), or its newest shard file when that is newer (writes; stores made
  before the mark existed);
* a probe-output entry (one split's scores, :mod:`audiobench.protocols.split_cache`): its mtime, renewed on
  every reuse.

A store is removed only while holding its ``store.users`` and ``store.lock`` exclusively: every process that
has the store open holds ``store.users`` shared until it closes it, so a store in use by a live run is kept and
named. (Processes of audiobench versions before December 2026 do not hold it; prune when none is running.)
Downloaded checkpoints and datasets are never pruned, nor on-disk feature matrices (``features/``: a run removes
its own at the end, and the next run of the same configuration one left by an interrupted run; they have no lock,
so one in use cannot be told from one left over).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from audiobench.protocols.split_cache import DIRECTORY as SPLIT_CACHE
from audiobench.shard_compaction import find_stores
from audiobench.shards import LOCK_FILE, USERS_FILE

REMOVED, WOULD_REMOVE, IN_USE = "removed", "would be removed", "kept: in use by a run"
NOT_REMOVED = "kept: could not be removed"


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


def store_last_used(directory: Path) -> float:
    """When a run last used the store in ``directory``: the newest mtime of its ``store.lock`` (the mark),
    ``store.users`` and shard files (writes). Not the index's: merely opening it, as ``cache info`` does, touches
    sqlite's ``-shm`` and ``-wal`` files."""
    times = []
    for path in [directory / LOCK_FILE, directory / USERS_FILE, *directory.glob("*.shard")]:
        try:
            times.append(path.stat().st_mtime)
        except OSError:  # absent, or removed meanwhile
            continue
    return max(times, default=0.0)


def _remove_store(directory: Path) -> str:
    """Remove the store unless a process has it open now: the outcome."""
    held: list[int] = []
    try:
        for name in (USERS_FILE, LOCK_FILE):
            try:
                descriptor = os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                return f"{NOT_REMOVED} ({error.strerror or error})"
            held.append(descriptor)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return IN_USE
        try:
            shutil.rmtree(directory)
        except OSError as error:
            return f"{NOT_REMOVED} ({error})"
        return REMOVED
    finally:
        for descriptor in held:
            os.close(descriptor)


def _stores(root: Path, cutoff: float, dry_run: bool) -> list[PruneItem]:
    items = []
    for directory in find_stores(root):
        last = store_last_used(directory)
        if last >= cutoff:
            continue
        nbytes = sum(stat.st_size for stat in _files(directory))
        items.append(PruneItem(directory, "store", nbytes, last, WOULD_REMOVE if dry_run else _remove_store(directory)))
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
            try:
                path.parent.rmdir()  # only when empty
            except OSError:
                pass  # other entries are left, or one was written meanwhile
        items.append(PruneItem(path, "probe outputs", stat.st_size, stat.st_mtime,
                               WOULD_REMOVE if dry_run else REMOVED))
    return items


def prune(root: Path, unused_for_s: float, dry_run: bool = False, now: float | None = None) -> list[PruneItem]:
    """Remove (or with ``dry_run`` only list) every store and probe-output entry under the cache ``root`` that
    no run has used for ``unused_for_s`` seconds."""
    if unused_for_s < 0:
        raise ValueError(f"unused_for_s must be >= 0, got {unused_for_s}")
    root = Path(root)
    cutoff = (time.time() if now is None else now) - unused_for_s
    return [*_stores(root, cutoff, dry_run), *_split_entries(root, cutoff, dry_run)]
