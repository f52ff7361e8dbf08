"""A sqlite database used from many processes: one connection per process (reopened after a fork), WAL
journal, a busy timeout, and a corrupt file rebuilt with a warning instead of failing the run."""

from __future__ import annotations

import os
import sqlite3
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from audiobench.errors import CacheWarning

QUERY_CHUNK = 500  # keys per sqlite query (well under sqlite's limit on bound parameters)
SQLITE_TIMEOUT_S = 60.0
_CORRUPT_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
_INHERITED: list[Any] = []  # connections inherited through fork: kept alive, never used nor closed in the child
T = TypeVar("T")


def _is_corrupt(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    return code in _CORRUPT_CODES or "not a database" in str(error) or "malformed" in str(error)


class LocalSqlite:
    """A sqlite database with one connection per process (reopened after fork), rebuilt when corrupt.

    Connections use WAL and a busy timeout, so several processes read and write at once.
    """

    def __init__(self, path: Path, schema: str) -> None:
        self.path, self.schema = Path(path), schema
        self._pid: int | None = None
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.RLock()  # threads of one process share its connection, one at a time

    def __getstate__(self) -> dict[str, Any]:  # picklable for spawned DataLoader workers
        return {"path": self.path, "schema": self.schema, "_pid": None, "_connection": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _lock=threading.RLock())

    def _open(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=SQLITE_TIMEOUT_S, isolation_level=None,
                                     check_same_thread=False)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(self.schema)
        except sqlite3.Error:
            connection.close()
            raise
        return connection

    def connection(self) -> sqlite3.Connection:
        """This process's connection (opened on first use; a corrupt database is rebuilt)."""
        if self._connection is None or self._pid != os.getpid():
            if self._connection is not None:
                _INHERITED.append(self._connection)  # closing it here could disturb the parent's database
                self._lock = threading.RLock()  # a lock held by another thread at the fork stays held here
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._connection = self._open()
            except sqlite3.DatabaseError as error:
                if not _is_corrupt(error):
                    raise
                self._connection = self._rebuild(error)
            self._pid = os.getpid()
        return self._connection

    def _rebuild(self, error: sqlite3.Error) -> sqlite3.Connection:
        warnings.warn(CacheWarning(f"Cache database {self.path} is damaged ({error}); it is rebuilt and what it "
                                   "held is recomputed."), stacklevel=4)
        if self._connection is not None and self._pid == os.getpid():
            self._connection.close()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        return self._open()

    def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)``; a database found corrupt on the way is rebuilt and ``work`` retried once."""
        connection = self.connection()
        with self._lock:
            try:
                return work(connection)
            except sqlite3.DatabaseError as error:
                if not _is_corrupt(error):
                    raise
                self._connection = self._rebuild(error)
                return work(self._connection)

    def select_in(self, sql: str, values: Sequence[Any]) -> list[tuple]:
        """Rows of ``sql`` for ``values``, queried in chunks: ``{}`` in ``sql`` stands for the placeholders."""
        def query(connection: sqlite3.Connection) -> list[tuple]:
            rows: list[tuple] = []
            for start in range(0, len(values), QUERY_CHUNK):
                part = values[start:start + QUERY_CHUNK]
                rows.extend(connection.execute(sql.format(",".join("?" * len(part))), part))
            return rows
        return self.run(query)

    def execute_many(self, sql: str, rows: Sequence[tuple]) -> None:
        """``sql`` once per row, all in one transaction."""
        def write(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                connection.executemany(sql, rows)
            except BaseException:
                connection.rollback()
                raise
            connection.execute("COMMIT")
        self.run(write)

    def close(self) -> None:
        """Close this process's connection (a later use reopens it)."""
        if self._connection is not None and self._pid == os.getpid():
            self._connection.close()
        self._connection = None
