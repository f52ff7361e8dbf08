"""Content-addressed embedding cache with atomic writes and verified reads.

Layout: ``<root>/<model key>/<first 2 hex>/<clip key>.emb`` plus ``<root>/<model key>/model.json``
describing what the model key stands for. The model key hashes everything that determines an
embedding (see :func:`audiobench.embeddings.cache_for`); the clip key hashes the clip's audio bytes and
the clip length the model saw.

An entry is the ``.npy`` serialisation of one float32 vector followed by a 32-byte blake2b checksum of
those bytes. Each entry is written to a temporary file and renamed into place, so an interrupted run
never leaves a partial entry and the next run resumes with the clips still missing. Every read is
verified (checksum, dtype, shape, finite values); an entry that fails is removed and reported through
:meth:`EmbeddingCache.take_damaged`, so the caller recomputes it and can name it.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from audiobench.atomic import atomic_write_bytes

ENTRY_FORMAT = "npy+blake2b-32"
ENTRY_SUFFIX = ".emb"
CHECKSUM_BYTES = 32


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


def _checksum(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=CHECKSUM_BYTES).digest()


def encode_entry(array: np.ndarray) -> bytes:
    """The bytes of a cache entry: ``.npy`` of ``array`` (float32) plus its checksum."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    payload = buffer.getvalue()
    return payload + _checksum(payload)


def decode_entry(data: bytes, shape: tuple[int, ...] | None) -> tuple[np.ndarray | None, str | None]:
    """``(array, None)`` for a good entry, ``(None, reason)`` for a damaged one."""
    if len(data) <= CHECKSUM_BYTES:
        return None, f"only {len(data)} bytes (torn write?)"
    payload, checksum = data[:-CHECKSUM_BYTES], data[-CHECKSUM_BYTES:]
    if _checksum(payload) != checksum:
        return None, "checksum mismatch (bytes changed on disk or a torn write)"
    try:
        array = np.load(io.BytesIO(payload), allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        return None, f"unreadable ({error})"
    if array.dtype != np.float32:
        return None, f"dtype {array.dtype}, expected float32"
    if shape is not None and tuple(array.shape) != tuple(shape):
        return None, f"shape {tuple(array.shape)}, expected {tuple(shape)}"
    if not np.isfinite(array).all():
        return None, "contains NaN or infinite values"
    return array, None


class EmbeddingCache:
    """Embeddings of one model configuration, one verified file per clip.

    ``shape`` is the shape every entry must have (e.g. ``(embedding_dim,)``); None accepts any shape.
    """

    def __init__(self, root: Path, fingerprint: dict[str, Any], shape: tuple[int, ...] | None = None) -> None:
        self.fingerprint = fingerprint
        self.shape = tuple(shape) if shape is not None else None
        self.model_key = stable_hash({**fingerprint, "entry_format": ENTRY_FORMAT, "shape": self.shape})[:24]
        self.directory = Path(root) / self.model_key
        self.directory.mkdir(parents=True, exist_ok=True)
        self._damaged: list[tuple[Path, str]] = []
        description = self.directory / "model.json"
        if not description.exists():
            content = {"fingerprint": fingerprint, "entry_format": ENTRY_FORMAT, "shape": self.shape}
            atomic_write_bytes(description, json.dumps(content, indent=1, sort_keys=True, default=str).encode())

    def _path(self, clip_key: str) -> Path:
        return self.directory / clip_key[:2] / f"{clip_key}{ENTRY_SUFFIX}"

    def get(self, clip_key: str) -> np.ndarray | None:
        """The cached embedding, or None (also for a damaged entry, which is removed and remembered)."""
        path = self._path(clip_key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            array, reason = None, f"unreadable ({error})"
        else:
            array, reason = decode_entry(data, self.shape)
        if reason is not None:
            self._damaged.append((path, reason))
            path.unlink(missing_ok=True)
        return array

    def take_damaged(self) -> list[tuple[Path, str]]:
        """Damaged entries met since the last call (path, reason); they were removed from the cache."""
        damaged, self._damaged = self._damaged, []
        return damaged

    def put(self, clip_key: str, embedding: np.ndarray) -> None:
        """Store an embedding atomically (refuses one of the wrong shape or with non-finite values)."""
        array = np.ascontiguousarray(embedding, dtype=np.float32)
        if self.shape is not None and array.shape != self.shape:
            raise ValueError(f"embedding of shape {array.shape} does not fit the cache shape {self.shape}")
        if not np.isfinite(array).all():
            raise ValueError("refusing to cache an embedding with NaN or infinite values")
        path = self._path(clip_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, encode_entry(array))
