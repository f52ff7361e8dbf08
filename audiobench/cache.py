"""Content-addressed cache of per-clip model outputs, in verified memory-mapped shards.

Layout: ``<root>/<model key>/`` holds ``model.json`` (what the model key stands for) and a
:class:`~audiobench.shards.ShardStore`: append-only shard files plus a sqlite index from clip key to bytes.
The model key hashes everything that determines an output (see :func:`audiobench.embeddings.cache_for`); the
clip key hashes the clip's audio bytes and the clip length the model saw. A task of 2 M clips is a few
1 GiB shards and one index, not 2 M files.

An entry is one float32 array. The bytes are written before the index row is committed, so an interrupted
run never leaves an entry that points at missing bytes, and the next run resumes with the clips still
missing. Every read is verified (crc32 of the bytes, dtype, shape, finite values); an entry that fails is
dropped from the index and reported through :meth:`EmbeddingCache.take_damaged`, so the caller recomputes
it and can name it.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from audiobench.atomic import atomic_write_bytes
from audiobench.errors import CacheWarning
from audiobench.shards import STORE_FORMAT, ShardStore

ENTRY_FORMAT = f"float32 in {STORE_FORMAT}"  # keys every cache: a new store format is a new cache
READ_CHUNK = 4096  # keys per index query when scanning a task's clips


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON form of ``obj``."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def file_digest(path: Path) -> str:
    """blake2b digest of a file's bytes (fast content identity of an audio clip)."""
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_entry(array: np.ndarray, shape: tuple[int, ...] | None) -> str | None:
    """Why a stored array is not a valid entry (None when it is one)."""
    if array.dtype != np.float32:
        return f"dtype {array.dtype}, expected float32"
    if shape is not None and tuple(array.shape) != tuple(shape):
        return f"shape {tuple(array.shape)}, expected {tuple(shape)}"
    if not np.isfinite(array).all():
        return "contains NaN or infinite values"
    return None


class EmbeddingCache:
    """Outputs of one model configuration by clip key, in a sharded store (see the module docstring).

    ``shape`` is the shape every entry must have (e.g. ``(embedding_dim,)``); None accepts any shape.
    Reads return arrays the caller owns (copies, not views into the shards).
    """

    def __init__(self, root: Path, fingerprint: dict[str, Any], shape: tuple[int, ...] | None = None) -> None:
        self.fingerprint = fingerprint
        self.shape = tuple(shape) if shape is not None else None
        self.model_key = stable_hash({**fingerprint, "entry_format": ENTRY_FORMAT, "shape": self.shape})[:24]
        self.directory = Path(root) / self.model_key
        self.directory.mkdir(parents=True, exist_ok=True)
        self._store: ShardStore | None = None
        self._damaged: list[tuple[str, str]] = []
        description = self.directory / "model.json"
        if not description.exists():
            content = {"fingerprint": fingerprint, "entry_format": ENTRY_FORMAT, "shape": self.shape}
            atomic_write_bytes(description, json.dumps(content, indent=1, sort_keys=True, default=str).encode())

    @property
    def store(self) -> ShardStore:
        """The shard store (opened on first use, so constructing a cache touches no index)."""
        if self._store is None:
            self._store = ShardStore(self.directory, mapped=False)  # reads are copied: no mapped pages kept
        return self._store

    def get_many(self, clip_keys: Sequence[str]) -> list[np.ndarray | None]:
        """The cached outputs of ``clip_keys`` in order, None for absent or damaged ones (a damaged entry is
        dropped and remembered)."""
        found = self.store.get_many(clip_keys)
        self._damaged.extend(self.store.take_damaged())
        result: list[np.ndarray | None] = []
        for key, array in zip(clip_keys, found):
            reason = check_entry(array, self.shape) if array is not None else None
            if reason is not None:
                self.discard(key, reason)
                array = None
            result.append(array)
        return result

    def scan(self, clip_keys: Sequence[str], chunk: int = READ_CHUNK) -> Iterator[tuple[int, np.ndarray | None]]:
        """``(position, output or None)`` for every key, read ``chunk`` keys at a time (bounded memory)."""
        for start in range(0, len(clip_keys), chunk):
            for offset, array in enumerate(self.get_many(clip_keys[start:start + chunk])):
                yield start + offset, array

    def get(self, clip_key: str) -> np.ndarray | None:
        """The cached output, or None (also for a damaged entry, which is dropped and remembered)."""
        return self.get_many([clip_key])[0]

    def discard(self, clip_key: str, reason: str) -> None:
        """Drop an entry found unusable and remember why (see :meth:`take_damaged`)."""
        self.store.delete([clip_key])
        self._damaged.append((clip_key, reason))

    def take_damaged(self) -> list[tuple[str, str]]:
        """Damaged entries met since the last call (clip key, reason); they were dropped from the cache."""
        damaged, self._damaged = self._damaged, []
        return damaged

    def put_many(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        """Store outputs (one index transaction); refuses ones of the wrong shape or with non-finite values."""
        checked = []
        for clip_key, output in items:
            array = np.ascontiguousarray(output, dtype=np.float32)
            if self.shape is not None and array.shape != self.shape:
                raise ValueError(f"output of shape {array.shape} does not fit the cache shape {self.shape}")
            if not np.isfinite(array).all():
                raise ValueError("refusing to cache an output with NaN or infinite values")
            checked.append((clip_key, array))
        self.store.put_many(checked)

    def put(self, clip_key: str, embedding: np.ndarray) -> None:
        """Store one output."""
        self.put_many([(clip_key, embedding)])

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_store": None, "_damaged": []}


def warn_damaged(cache: EmbeddingCache, show: int = 5) -> None:
    """Name the damaged entries ``cache`` met and dropped (they are recomputed), ``show`` at most, in a
    :class:`CacheWarning` each. (``audiobench.embeddings`` keeps its own copy: editing that module changes the
    input pipeline's code version, which keys every cached embedding.)"""
    damaged = cache.take_damaged()
    for key, reason in damaged[:show]:
        warnings.warn(f"Damaged embedding cache entry {key} in {cache.directory}: {reason}; recomputing it.",
                      CacheWarning, stacklevel=3)
    if len(damaged) > show:
        warnings.warn(f"{len(damaged) - show} more damaged embedding cache entries under {cache.directory} are "
                      f"being recomputed.", CacheWarning, stacklevel=3)
