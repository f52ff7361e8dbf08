"""A probe's output on one split, cached by everything that determines it.

A linear probe solved to its optimum, like the seeded MLP probe or frame head on a given device, is a function
of its settings, its code, the libraries that run it and the arrays it is given. Its test scores on a split
are therefore stored under a key that hashes all of those: the probe's identity (settings, the derived version
of the protocol's code, the versions of numpy, scipy, scikit-learn and torch) and the bytes, dtypes and shapes
of the split's arrays (training and test features, labels, masks, validation rows, the number of classes). A
re-run of a cached configuration then neither imports the solver nor fits anything, and any change of an
input, a setting or the code is a new key.

Each entry is one ``.npz`` file (the scores, and the probe's per-split state as JSON, e.g. the C it chose and
its solver iterations, or the MLP's grid point), written atomically. A read is checked (zip CRC, dtype, shape,
finite values); a damaged entry is removed, named in :attr:`SplitCache.damaged`, and the split is fitted
again.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import zipfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from audiobench.atomic import atomic_write_bytes

SPLIT_CACHE_FORMAT = "split-outputs-1"
DIRECTORY = "probe-outputs"  # under the cache root
LIBRARIES = ("numpy", "scipy", "scikit-learn", "torch")


@lru_cache(maxsize=None)
def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a probe's solver runs on (read without importing them)."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def split_key(identity: Mapping[str, Any], arrays: Mapping[str, Any]) -> str | None:
    """The cache key of one split's fit: ``identity`` plus every array's dtype, shape and bytes.

    A value of ``arrays`` is an array, None, or a list of arrays (e.g. one ``[T_i, D]`` frame matrix per clip,
    hashed one after the other with their shapes, without concatenating them). None when an array cannot be
    hashed by its bytes (object dtype, e.g. string labels): such a split is not cached.
    """
    digest = hashlib.blake2b(digest_size=24)
    head = {"format": SPLIT_CACHE_FORMAT, "identity": identity, "libraries": library_versions()}
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    for name in sorted(arrays):
        value = arrays[name]
        if value is None:
            digest.update(f"\0{name}:none".encode())
            continue
        parts = [value] if isinstance(value, np.ndarray) else list(value)
        digest.update(f"\0{name}:{'array' if isinstance(value, np.ndarray) else len(parts)}".encode())
        for part in parts:
            array = np.ascontiguousarray(part)
            if array.dtype.hasobject:
                return None
            digest.update(f"\0{array.dtype.str}:{array.shape}\0".encode())
            digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


class SplitCache:
    """Split outputs by :func:`split_key`, one file each under ``directory``; counts what it served.

    Safe to use from the threads that fit several splits at once.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.reused = 0
        self.computed = 0
        self.damaged: list[tuple[str, str]] = []  # (file, why) of entries removed as damaged
        self.unwritable: str | None = None  # why an entry could not be stored (the run goes on without it)
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npz"

    def get(self, key: str, rows: int, columns: int) -> tuple[np.ndarray, dict[str, Any]] | None:
        """The cached (scores [rows, columns], state) of ``key``, or None (absent, or damaged and removed)."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except OSError:  # absent, or a cache that cannot be read: the split is fitted
            return None
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as entry:
                scores, state = entry["scores"], json.loads(str(entry["state"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            return self._drop(path, f"unreadable ({type(error).__name__}: {error})")
        if scores.dtype.kind != "f" or scores.shape != (rows, columns):
            return self._drop(path, f"scores {scores.dtype} {scores.shape}, expected float ({rows}, {columns})")
        if not np.isfinite(scores).all():
            return self._drop(path, "scores contain NaN or infinite values")
        if not isinstance(state, dict):
            return self._drop(path, "its state is not a JSON object")
        _mark_used(path)
        return scores, state

    def reuse(self) -> None:
        """Count one split whose cached outputs (from :meth:`get`) were taken."""
        with self._lock:
            self.reused += 1

    def discard(self, key: str, why: str) -> None:
        """Remove the entry of ``key`` as damaged (e.g. a state the probe could not take back)."""
        self._drop(self._path(key), why)

    def put(self, key: str, scores: np.ndarray, state: Mapping[str, Any]) -> None:
        """Store one split's scores and the probe's state after fitting it."""
        with self._lock:
            self.computed += 1
        buffer = io.BytesIO()
        np.savez(buffer, scores=np.asarray(scores), state=np.array(json.dumps(state, sort_keys=True)))
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, buffer.getvalue())
        except OSError as error:  # a read-only or full cache only costs fitting again next time
            with self._lock:
                self.unwritable = self.unwritable or f"{path.parent}: {error.strerror or error}"

    def _drop(self, path: Path, why: str) -> None:
        path.unlink(missing_ok=True)
        with self._lock:
            self.damaged.append((str(path), why))
        return None

    def record_fields(self) -> dict[str, Any]:
        """The record's ``probe_outputs`` block (splits fitted now or reused from this cache); empty when no
        split went through the cache (streaming probes, pretrained-head)."""
        if not self.computed + self.reused:
            return {}
        return {"probe_outputs": {"computed": self.computed, "reused": self.reused, "cache": SPLIT_CACHE_FORMAT}}


def _mark_used(path: Path) -> None:
    """Set the entry's mtime to now: its last use, which ``audiobench cache prune`` goes by."""
    try:
        os.utime(path)
    except OSError:  # a read-only cache is simply not marked
        pass


def usage(directory: Path) -> tuple[int, int]:
    """(entries, bytes) of the split cache in ``directory`` (0, 0 when there is none)."""
    sizes = [path.stat().st_size for path in Path(directory).glob("*/*.npz")]
    return len(sizes), sum(sizes)
