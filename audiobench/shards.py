"""A memory-mapped, sharded, verified key -> array store.

Arrays are appended as raw bytes (64-byte aligned) to shard files; each process appends to its own
shard (``<pid>-<random>.shard``), so writers never contend, and starts a new one past
``max_shard_bytes``. A sqlite index (``index.sqlite``, WAL) maps each key to (shard, offset, nbytes,
dtype, shape, crc32). The bytes are written before the index row is committed, so a row never points at
missing bytes; an interrupted write leaves only unindexed tail bytes, which nothing reads.

Reads are read-only numpy views into a memory map of the shard (opened once per process), or, with
``mapped=False``, arrays of their own read with ``pread`` (for callers that copy anyway: scanning a store
far larger than memory then leaves no mapped pages behind in the process's resident set). With
``verify`` every read checks the crc32 of the bytes; an entry that fails (or whose shard is missing,
too short or whose metadata is unreadable) is "damaged": its row is deleted, it is reported through
:meth:`ShardStore.take_damaged` and reads as None, so the caller recomputes it.

Reads and writes hold a shared ``flock`` on ``store.lock`` while they use the index and the shards;
compaction (:mod:`audiobench.shard_compaction`) holds it exclusively, so it never moves bytes under them. A
process also holds ``store.users`` shared from its first use of the store until it closes it (or exits), and
pruning (:mod:`audiobench.cache_prune`) removes a store only when it gets that file exclusively. The mtime of
``store.lock`` is the store's last use.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import mmap
import os
import secrets
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from audiobench.atomic import atomic_write_bytes
from audiobench.sqlite_local import LocalSqlite

STORE_FORMAT = "shards-1 (raw bytes, 64-byte aligned, sqlite index, crc32)"
ALIGNMENT = 64
LOCK_FILE = "store.lock"
USERS_FILE = "store.users"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, shard TEXT NOT NULL, offset INTEGER NOT NULL,
    nbytes INTEGER NOT NULL, dtype TEXT NOT NULL, shape TEXT NOT NULL, crc32 INTEGER NOT NULL) WITHOUT ROWID;
"""
_Row = tuple[str, str, int, int, str, str, int]  # key, shard, offset, nbytes, dtype, shape, crc32


class _ProcessState:
    """What belongs to one process: the shard it appends to and its memory maps."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.shard = ""  # the shard this process appends to (none yet)
        self.maps: dict[str, mmap.mmap] = {}
        self.files: dict[str, int] = {}  # file descriptors of shards read with pread
        self.lock_file: int | None = None  # this process's descriptor of store.lock (flock is per descriptor)
        self.users_file: int | None = None  # store.users, held shared while this process uses the store
        self.marked_used = -1e18  # when this process last set store.lock's mtime (the store's last use)

    def close_files(self) -> None:
        for descriptor in self.files.values():
            os.close(descriptor)
        self.files.clear()
        for name in ("lock_file", "users_file"):
            descriptor = getattr(self, name)
            if descriptor is not None:
                os.close(descriptor)  # closing releases its flock
                setattr(self, name, None)


def _join_users(directory: Path) -> int | None:
    """Hold ``store.users`` shared for as long as this process uses the store: ``audiobench cache prune`` removes
    a store only when it gets that file exclusively, so never one a live process has open. A store pruned while
    this process waited for the lock is made again. None where the file cannot be opened (a read-only cache,
    which nothing prunes)."""
    while True:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(directory / USERS_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            try:
                descriptor = os.open(directory / USERS_FILE, os.O_RDONLY)
            except OSError:
                return None
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        try:
            if os.stat(directory / USERS_FILE).st_ino == os.fstat(descriptor).st_ino:
                return descriptor
        except FileNotFoundError:
            pass
        os.close(descriptor)  # the store was removed while this process waited: join the one made anew


USE_MARK_INTERVAL_S = 60.0  # how often a process using a store renews its last-use time


def _mark_used(state: _ProcessState) -> None:
    """Set ``store.lock``'s mtime to now, at most once a minute per process: the store's last use, which
    ``audiobench cache prune`` goes by (a cache on a read-only file system is simply not marked)."""
    now = time.monotonic()
    if now - state.marked_used < USE_MARK_INTERVAL_S or state.lock_file is None:
        return
    state.marked_used = now
    try:
        os.utime(state.lock_file)
    except OSError:
        pass


class ShardStore:
    """Arrays by key in append-only shard files with a sqlite index; reads are verified memory-map views."""

    def __init__(self, directory: Path, max_shard_bytes: int = 1 << 30, verify: bool = True,
                 mapped: bool = True) -> None:
        self.directory, self.max_shard_bytes, self.verify = Path(directory), max_shard_bytes, verify
        self.mapped = mapped
        self.directory.mkdir(parents=True, exist_ok=True)
        self._db = LocalSqlite(self.directory / "index.sqlite", _SCHEMA)
        self._state: _ProcessState | None = None
        self._damaged: list[tuple[str, str]] = []

    def __getstate__(self) -> dict[str, Any]:  # picklable for spawned DataLoader workers
        return {**self.__dict__, "_state": None, "_damaged": []}

    def close(self) -> None:
        """Drop this process's memory maps (views keep theirs alive) and close its index connection."""
        if self._state is not None and self._state.pid == os.getpid():
            self._state.close_files()
        self._state = None
        self._db.close()

    def _local(self) -> _ProcessState:
        """This process's state; the first call of a process joins the store's users (see :func:`_join_users`),
        before it opens the index."""
        if self._state is None or self._state.pid != os.getpid():
            state = _ProcessState()  # after fork: the parent's shard and maps stay the parent's
            state.users_file = _join_users(self.directory)
            self._state = state
        return self._state

    @contextlib.contextmanager
    def _shared(self, state: _ProcessState) -> Iterator[None]:
        """Hold ``store.lock`` shared (compaction waits for every holder); callers hold ``state.lock``."""
        if state.lock_file is None:
            state.lock_file = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(state.lock_file, fcntl.LOCK_SH)
        _mark_used(state)
        try:
            yield
        finally:
            fcntl.flock(state.lock_file, fcntl.LOCK_UN)

    # -- writing ---------------------------------------------------------------------------------------
    def _append(self, state: _ProcessState, handle: Any, data: memoryview) -> tuple[Any, int]:
        """Append ``data`` at the next aligned offset of this process's shard, starting a new shard when it
        would grow past ``max_shard_bytes``: (open shard, offset)."""
        if handle is None and state.shard:
            try:  # never re-created under its name once compaction removed it: cached maps keep old bytes
                handle = os.fdopen(os.open(self.directory / state.shard, os.O_WRONLY | os.O_APPEND), "ab", buffering=0)
            except FileNotFoundError:
                state.shard = ""
        size = os.fstat(handle.fileno()).st_size if handle is not None else 0
        offset = -(-size // ALIGNMENT) * ALIGNMENT
        if handle is None or (size and offset + len(data) > self.max_shard_bytes):
            if handle is not None:
                handle.close()
            state.shard = f"{os.getpid()}-{secrets.token_hex(6)}.shard"
            handle, size, offset = open(self.directory / state.shard, "ab", buffering=0), 0, 0
        for part in (memoryview(bytes(offset - size)), data):
            while len(part):
                part = part[handle.write(part):]
        return handle, offset

    def put_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store arrays under their keys (one index transaction; a key put again is replaced)."""
        state, rows, handle = self._local(), [], None
        with state.lock, self._shared(state):
            try:
                for key, array in items:
                    array = np.asarray(array, order="C")
                    if array.dtype.hasobject:
                        raise ValueError(f"cannot store an array of dtype {array.dtype} under key {key!r}")
                    data = memoryview(array.reshape(-1).view(np.uint8))
                    handle, offset = self._append(state, handle, data)
                    rows.append((key, state.shard, offset, array.nbytes, array.dtype.str,
                                 json.dumps(list(array.shape)), zlib.crc32(data)))
            finally:
                if handle is not None:
                    handle.close()
            if rows:
                self._db.execute_many("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def put(self, key: str, array: np.ndarray) -> None:
        """Store one array under ``key``."""
        self.put_many([(key, array)])

    # -- reading ---------------------------------------------------------------------------------------
    def _rows(self, keys: Sequence[str], columns: str) -> dict[str, tuple]:
        self._local()
        rows = self._db.select_in(f"SELECT {columns} FROM entries WHERE key IN ({{}})", list(keys))
        return {row[0]: row for row in rows}

    def missing(self, keys: Sequence[str]) -> list[int]:
        """Positions in ``keys`` of the keys not in the store (reads no data)."""
        present = self._rows(keys, "key")
        return [position for position, key in enumerate(keys) if key not in present]

    def __contains__(self, key: str) -> bool:
        return not self.missing([key])

    def __len__(self) -> int:
        self._local()
        return self._db.run(lambda connection: connection.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    def location(self, key: str) -> tuple[Path, int, int]:
        """(shard path, offset, nbytes) of ``key``'s bytes; KeyError when absent."""
        row = self._rows([key], "key, shard, offset, nbytes").get(key)
        if row is None:
            raise KeyError(key)
        return self.directory / row[1], row[2], row[3]

    def get_many(self, keys: Sequence[str]) -> list[np.ndarray | None]:
        """The arrays of ``keys`` in order (read-only views), None for absent or damaged ones."""
        state, sizes = self._local(), {}
        with state.lock, self._shared(state):
            rows = self._rows(keys, "key, shard, offset, nbytes, dtype, shape, crc32")
            return [self._read(state, rows[key], sizes) if key in rows else None for key in keys]

    def get(self, key: str) -> np.ndarray | None:
        """The array of ``key`` (read-only view), or None when absent or damaged."""
        return self.get_many([key])[0]

    def _read(self, state: _ProcessState, row: _Row, sizes: dict[str, int | None]) -> np.ndarray | None:
        key, shard, offset, nbytes, dtype_text, shape_text, crc = row
        try:
            dtype, shape = np.dtype(dtype_text), tuple(int(size) for size in json.loads(shape_text))
            if (dtype.hasobject or min(shape, default=0) < 0 or offset < 0
                    or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != nbytes):
                raise ValueError(f"{nbytes} bytes do not hold shape {shape} of {dtype}")
        except (TypeError, ValueError) as error:
            return self._damage(row, f"unreadable metadata ({error})")
        if nbytes == 0:
            empty = np.empty(shape, dtype)
            empty.flags.writeable = False
            return empty
        if self.mapped:
            source = self._map(state, shard, offset + nbytes, sizes)
            start = offset
        else:
            source, start = self._pread(state, shard, offset, nbytes, sizes), 0
        if isinstance(source, str):
            return self._damage(row, source)
        if self.verify and zlib.crc32(memoryview(source)[start:start + nbytes]) != crc:
            return self._damage(row, "crc32 mismatch (bytes changed on disk)")
        array = np.frombuffer(source, dtype=dtype, count=nbytes // dtype.itemsize, offset=start).reshape(shape)
        return array if self.mapped else array.copy()

    def _pread(self, state: _ProcessState, shard: str, offset: int, nbytes: int,
               sizes: dict[str, int | None]) -> bytes | str:
        """The entry's bytes read from the shard file, or the reason they cannot be."""
        size = self._size(shard, sizes)
        if size is None:
            return f"shard {shard} missing"
        if size < offset + nbytes:
            return f"shard {shard} too short ({size} bytes, entry ends at {offset + nbytes})"
        try:
            if shard not in state.files:
                state.files[shard] = os.open(self.directory / shard, os.O_RDONLY)
            data = os.pread(state.files[shard], nbytes, offset)
        except OSError as error:
            return f"shard {shard} unreadable ({error})"
        return data if len(data) == nbytes else f"shard {shard} too short (read {len(data)} of {nbytes} bytes)"

    def _size(self, shard: str, sizes: dict[str, int | None]) -> int | None:
        """The shard's size in bytes (stat once per :meth:`get_many`), None when it is missing."""
        if shard not in sizes:
            try:
                sizes[shard] = os.stat(self.directory / shard).st_size
            except FileNotFoundError:
                sizes[shard] = None
        return sizes[shard]

    def _map(self, state: _ProcessState, shard: str, needed: int, sizes: dict[str, int | None]) -> mmap.mmap | str:
        """A read-only map of ``shard`` covering ``needed`` bytes, or the reason there is none.

        The shard's size is checked (once per :meth:`get_many`) even when it is mapped already: reading a
        mapped page past the end of a file that was cut short would kill the process (SIGBUS).
        """
        size = self._size(shard, sizes)
        if size is None:
            return f"shard {shard} missing"
        if size < needed:
            return f"shard {shard} too short ({size} bytes, entry ends at {needed})"
        mapped = state.maps.get(shard)
        if mapped is not None and len(mapped) >= needed:
            return mapped
        try:
            with open(self.directory / shard, "rb") as handle:
                mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as error:
            return f"shard {shard} unreadable ({error})"
        if len(mapped) < needed:
            return f"shard {shard} too short ({len(mapped)} bytes, entry ends at {needed})"
        state.maps[shard] = mapped  # an older, shorter map stays alive as long as views into it do
        return mapped

    def delete(self, keys: Sequence[str]) -> None:
        """Remove the index rows of ``keys`` (their bytes stay in the shards, unreferenced)."""
        self._local()
        self._db.execute_many("DELETE FROM entries WHERE key = ?", [(key,) for key in keys])

    def _damage(self, row: _Row, reason: str) -> None:
        key, shard, offset = row[:3]
        self._damaged.append((key, reason))
        self._db.run(lambda connection: connection.execute(
            "DELETE FROM entries WHERE key = ? AND shard = ? AND offset = ?", (key, shard, offset)))
        return None

    def take_damaged(self) -> list[tuple[str, str]]:
        """Damaged entries met since the last call (key, reason); their rows were deleted."""
        damaged, self._damaged = self._damaged, []
        return damaged

    # -- description -----------------------------------------------------------------------------------
    def describe(self, info: dict[str, Any]) -> None:
        """Write ``store.json`` (atomically) saying what the store holds; unchanged content is not rewritten."""
        path = self.directory / "store.json"
        data = json.dumps({"format": STORE_FORMAT, "info": info}, indent=1, sort_keys=True, default=str).encode()
        try:
            if path.read_bytes() == data:
                return
        except OSError:
            pass
        atomic_write_bytes(path, data)

    def description(self) -> dict[str, Any] | None:
        """What :meth:`describe` recorded, or None."""
        try:
            return json.loads((self.directory / "store.json").read_text())
        except (OSError, ValueError):
            return None

