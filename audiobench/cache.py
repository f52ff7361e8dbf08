"""Content-addressed embedding cache with atomic writes.

Layout: ``<root>/<model key>/<first 2 hex>/<clip key>.npy`` plus ``<root>/<model key>/model.json``
describing what the model key stands for. The model key hashes everything that determines an
embedding (model name and config, checkpoint sha256, front-end config, audio pipeline); the clip key
hashes the clip's audio bytes and the clip length the model saw. Each entry is written to a temporary
file and renamed into place, so an interrupted run never leaves a corrupt entry and the next run
resumes with the clips still missing.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from audiobench.atomic import atomic_write_bytes


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


class EmbeddingCache:
    """Embeddings of one model configuration, one ``.npy`` file per clip."""

    def __init__(self, root: Path, fingerprint: dict[str, Any]) -> None:
        self.fingerprint = fingerprint
        self.model_key = stable_hash(fingerprint)[:24]
        self.directory = Path(root) / self.model_key
        self.directory.mkdir(parents=True, exist_ok=True)
        description = self.directory / "model.json"
        if not description.exists():
            atomic_write_bytes(description, json.dumps(fingerprint, indent=1, sort_keys=True).encode())

    def _path(self, clip_key: str) -> Path:
        return self.directory / clip_key[:2] / f"{clip_key}.npy"

    def get(self, clip_key: str) -> np.ndarray | None:
        """The cached embedding, or None (also for an unreadable entry, which is then removed)."""
        path = self._path(clip_key)
        if not path.exists():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            path.unlink(missing_ok=True)
            return None

    def put(self, clip_key: str, embedding: np.ndarray) -> None:
        """Store an embedding atomically."""
        path = self._path(clip_key)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(embedding, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())
