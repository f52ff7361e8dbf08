"""Content identity of files: :func:`audiobench.cache.file_digest`, remembered by stat so it is read once.

A :class:`ContentIndex` keeps, per resolved path, the file's (size, mtime_ns, inode, ctime_ns) and its
digest. A file whose stat still matches is not read again; any difference re-hashes it. As git does
against "racily clean" files, a digest is not remembered when the file's mtime lies within
:data:`RACY_SECONDS` of the moment it was hashed: a write in the same timestamp tick right after hashing
would leave the stat unchanged. The index is a sqlite database (WAL, one connection per process), so
DataLoader workers and concurrent runs share it; a corrupt database is rebuilt with a warning.
"""

from __future__ import annotations

import os
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Iterable

from audiobench.cache import file_digest
from audiobench.cachedir import cache_subdir
from audiobench.errors import CacheWarning
from audiobench.sqlite_local import LocalSqlite

RACY_SECONDS = 2.0
_RACY_NS = int(RACY_SECONDS * 1e9)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, digest TEXT NOT NULL) WITHOUT ROWID;
"""
_Signature = tuple[int, int, int, int]  # size, mtime_ns, ino, ctime_ns
_PLAIN_SEPARATOR = os.altsep is None  # paths split at os.sep alone (POSIX): the fast way


def _signature(stat: os.stat_result) -> _Signature:
    return stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns


class _Resolver:
    """Absolute paths with symlinked directories resolved, resolving each directory once.

    The file name itself is kept (a symlinked file is identified by its link; stat follows it, so a
    retargeted link has a different signature).
    """

    def __init__(self) -> None:
        self._directories: dict[str, str] = {}

    def __call__(self, path: str | Path) -> str:
        text = os.fspath(path)
        if not os.path.isabs(text):
            text = os.path.abspath(text)
        directory, _, name = text.rpartition(os.sep) if _PLAIN_SEPARATOR else os.path.split(text)
        resolved = self._directories.get(directory)
        if resolved is None:
            resolved = self._directories[directory] = os.path.join(os.path.realpath(directory or os.sep), "")
        return resolved + name


class ContentIndex:
    """Remembered file digests, keyed by resolved path and checked against the file's stat."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self._db = LocalSqlite(self.db_path, _SCHEMA)

    def digest(self, path: str | Path) -> str:
        """The digest of one file (see :meth:`digests`)."""
        return self.digests([path])[0]

    def digests(self, paths: Iterable[str | Path]) -> list[str]:
        """``file_digest`` of each path, reading only files that are new or whose stat changed.

        A missing or unreadable file raises the OSError that reading it raises.
        """
        resolve = _Resolver()
        keys = [resolve(path) for path in paths]
        signatures = [_signature(os.stat(key)) for key in keys]
        known = self._lookup(sorted(set(keys)))
        results: list[str] = []
        fresh: dict[str, tuple] = {}
        for key, signature in zip(keys, signatures):
            stored = known.get(key)
            if stored is not None and stored[0] == signature:
                results.append(stored[1])
                continue
            digest = file_digest(Path(key))
            if time.time_ns() - signature[1] >= _RACY_NS:  # else the file may still change within its mtime tick
                fresh[key] = (key, *signature, digest)
            known[key] = (signature, digest)
            results.append(digest)
        if fresh:
            self._store(list(fresh.values()))
        return results

    def _lookup(self, keys: list[str]) -> dict[str, tuple[_Signature, str]]:
        sql = "SELECT path, size, mtime_ns, ino, ctime_ns, digest FROM digests WHERE path IN ({})"
        try:
            rows = self._db.select_in(sql, keys)
        except (sqlite3.Error, OSError) as error:  # e.g. locked past the timeout, an unwritable directory
            _warn_unusable(self.db_path, error)
            return {}
        return {path: ((size, mtime_ns, ino, ctime_ns), digest) for path, size, mtime_ns, ino, ctime_ns, digest in rows}

    def _store(self, rows: list[tuple]) -> None:
        try:
            self._db.execute_many("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?)", rows)
        except (sqlite3.Error, OSError) as error:
            _warn_unusable(self.db_path, error)

    def close(self) -> None:
        """Close this process's connection (a later use reopens it)."""
        self._db.close()


def _warn_unusable(db_path: Path, error: sqlite3.Error) -> None:
    warnings.warn(CacheWarning(f"Content index {db_path} is unusable ({error}); files are hashed instead."),
                  stacklevel=4)


_DEFAULT_INDEXES: dict[Path, ContentIndex] = {}


def default_content_index() -> ContentIndex:
    """The user's content index, under the audiobench cache (``content-ids/index.sqlite``); one per location."""
    db_path = cache_subdir("content-ids") / "index.sqlite"
    if db_path not in _DEFAULT_INDEXES:
        _DEFAULT_INDEXES[db_path] = ContentIndex(db_path)
    return _DEFAULT_INDEXES[db_path]


def content_digest(path: str | Path, index: ContentIndex | None = None) -> str:
    """``audiobench.cache.file_digest(path)``, without reading the file when ``index`` knows its stat.

    ``index`` defaults to :func:`default_content_index`.
    """
    return (index if index is not None else default_content_index()).digest(path)
