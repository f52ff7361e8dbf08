"""Disk usage and compaction of :class:`~audiobench.shards.ShardStore` s (embedding, frame and audio caches).

Shards are append-only: an entry put again, or dropped as damaged, leaves its old bytes behind, and a writer
killed before its commit leaves unindexed tail bytes or a shard no row points at. :func:`compact` copies the
live entries of every shard with at least ``min_waste`` of dead bytes into new shards (verifying each entry's
crc32 on the way: a damaged one is dropped and named), re-points their index rows in one transaction, and
only then removes the old shards and the shards no row points at. It holds the store's lock exclusively, so
no read or write of another process sees a shard disappear under it; a crash at any point leaves either the
old rows and shards or the new ones (a shard left over is removed by the next compaction).
"""

from __future__ import annotations

import fcntl
import os
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from audiobench.errors import AudiobenchError
from audiobench.shards import LOCK_FILE, ShardStore, _ProcessState

INDEX = "index.sqlite"


@dataclass
class StoreUsage:
    """What a store holds: entries, the bytes they use, and the bytes its shard files take."""

    directory: Path
    entries: int
    live_bytes: int
    shard_bytes: int
    shards: int

    @property
    def waste(self) -> float:
        """Fraction of the shard bytes no entry uses."""
        return 1.0 - self.live_bytes / self.shard_bytes if self.shard_bytes else 0.0


@dataclass
class Compaction:
    """What :func:`compact` did to one store."""

    directory: Path
    before: StoreUsage
    after: StoreUsage
    rewritten: int = 0  # shards whose live entries were copied out
    removed: int = 0  # shard files removed (rewritten ones and ones no row pointed at)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (key, reason) of damaged entries dropped


DESCRIPTIONS = ("model.json", "store.json")  # written beside a store by its owner (EmbeddingCache, AudioCache)


def find_stores(root: Path) -> list[Path]:
    """Directories under ``root`` holding a shard store, sorted: an index beside shards or a store description
    (other sqlite databases of the cache, e.g. the content-id index, are not shard stores and are not opened)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(path.parent for path in root.rglob(INDEX) if path.is_file() and (
        any((path.parent / name).is_file() for name in DESCRIPTIONS) or any(path.parent.glob("*.shard"))))


def _shard_sizes(directory: Path) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in directory.glob("*.shard")}


def _live(store: ShardStore) -> dict[str, tuple[int, int]]:
    rows = store._db.run(lambda connection: connection.execute(
        "SELECT shard, COUNT(*), SUM(nbytes) FROM entries GROUP BY shard").fetchall())
    return {shard: (count, int(nbytes or 0)) for shard, count, nbytes in rows}


def usage(store: ShardStore) -> StoreUsage:
    """Entries and bytes of ``store`` (reads the index and the shard sizes, no data)."""
    live, sizes = _live(store), _shard_sizes(store.directory)
    return StoreUsage(store.directory, sum(count for count, _ in live.values()),
                      sum(nbytes for _, nbytes in live.values()), sum(sizes.values()), len(sizes))


@contextmanager
def _exclusive(directory: Path, timeout_s: float) -> Iterator[None]:
    """``store.lock`` held exclusively (waits up to ``timeout_s`` for readers and writers to finish)."""
    descriptor = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise AudiobenchError(f"The cache store {directory} is in use by another process.",
                                          hint="Compact when no audiobench run is using the cache.") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def compact(store: ShardStore, min_waste: float = 0.25, timeout_s: float = 10.0) -> Compaction:
    """Rewrite the shards of ``store`` with at least ``min_waste`` dead bytes and remove unreferenced ones."""
    if not 0.0 <= min_waste <= 1.0:
        raise ValueError(f"min_waste must be in [0, 1], got {min_waste}")
    with _exclusive(store.directory, timeout_s):
        before = usage(store)
        live, sizes = _live(store), _shard_sizes(store.directory)
        rewrite = [shard for shard, size in sorted(sizes.items())
                   if shard in live and size and 1.0 - live[shard][1] / size >= min_waste]
        unreferenced = [shard for shard in sorted(sizes) if shard not in live]
        result = Compaction(store.directory, before, before)
        moves, drops = _copy_live_entries(store, rewrite, result.dropped)
        if moves or drops:
            def commit(connection) -> None:  # type: ignore[no-untyped-def]
                connection.execute("BEGIN IMMEDIATE")
                try:
                    connection.executemany(
                        "UPDATE entries SET shard = ?, offset = ? WHERE key = ? AND shard = ? AND offset = ?", moves)
                    connection.executemany("DELETE FROM entries WHERE key = ? AND shard = ? AND offset = ?", drops)
                except BaseException:
                    connection.rollback()
                    raise
                connection.execute("COMMIT")
            store._db.run(commit)
        for shard in rewrite + unreferenced:
            (store.directory / shard).unlink(missing_ok=True)
        result.rewritten, result.removed = len(rewrite), len(rewrite) + len(unreferenced)
        result.after = usage(store)
        return result


def _copy_live_entries(store: ShardStore, shards: list[str],
                       dropped: list[tuple[str, str]]) -> tuple[list[tuple], list[tuple]]:
    """Append the verified live entries of ``shards`` to new shards: (index row moves, damaged rows)."""
    moves: list[tuple] = []
    drops: list[tuple] = []
    state, handle = _ProcessState(), None  # a writer of its own: the new shards get fresh names
    try:
        for shard in shards:
            rows = store._db.run(lambda connection: connection.execute(
                "SELECT key, offset, nbytes, crc32 FROM entries WHERE shard = ? ORDER BY offset", (shard,)).fetchall())
            descriptor = os.open(store.directory / shard, os.O_RDONLY)
            try:
                for key, offset, nbytes, crc in rows:
                    data = os.pread(descriptor, nbytes, offset) if nbytes else b""
                    if len(data) != nbytes or zlib.crc32(data) != crc:
                        reason = "shard too short" if len(data) != nbytes else "crc32 mismatch (bytes changed on disk)"
                        dropped.append((key, f"{reason}, found while compacting"))
                        drops.append((key, shard, offset))
                        continue
                    handle, new_offset = store._append(state, handle, memoryview(data))
                    moves.append((state.shard, new_offset, key, shard, offset))
            finally:
                os.close(descriptor)
    finally:
        if handle is not None:
            handle.close()
    for shard in sorted({move[0] for move in moves}):  # the new bytes are on disk before any row points at them
        descriptor = os.open(store.directory / shard, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    return moves, drops
