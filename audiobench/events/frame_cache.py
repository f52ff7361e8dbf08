"""The cache of frame embeddings ``[T, D]`` per clip, without torch (a re-run reads it without the model).

A cache entry is one clip's frames flattened to ``[T * D]`` float32 (the cache checks dtype, checksum and
finite values); reading it back checks that the length is a whole number of ``D``-sized frames and, for
clips of a fixed length, that ``T`` is the number of frames of :mod:`audiobench.frame_grid`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from audiobench.cache import EmbeddingCache
from audiobench.frame_grid import HOP_MS, WINDOW_MS, frame_count, real_hop_ms
from audiobench.input_pipeline import input_pipeline
from audiobench.output_cache import precision_key


@dataclass
class ClipFrames:
    """Frame embeddings of every clip (``frames[i]`` is ``[T_i, D]``) and the frame hop in ms."""

    frames: list[np.ndarray]
    hop_ms: float

    def timestamps_ms(self, i: int) -> np.ndarray:
        """Centre time of every frame of clip ``i`` (frame ``t`` is centred on ``t * hop``)."""
        return np.arange(len(self.frames[i]), dtype=np.float64) * self.hop_ms


class FrameCache(EmbeddingCache):
    """An :class:`EmbeddingCache` of flattened ``[T * D]`` frame entries (no fixed shape: ``T`` follows the clip)."""

    def get_frames_many(self, keys: Sequence[str], dim: int, expected_frames: int | None) -> list[np.ndarray | None]:
        """Cached ``[T, D]`` entries (None when absent or not a whole ``[T, D]``: such an entry is dropped,
        reported through :meth:`take_damaged`, and recomputed)."""
        result: list[np.ndarray | None] = []
        for key, flat in zip(keys, self.get_many(keys)):
            if flat is not None:
                whole = flat.ndim == 1 and flat.size > 0 and flat.size % dim == 0
                if not whole or (expected_frames and flat.size != expected_frames * dim):
                    expected = f"{expected_frames} x {dim}" if expected_frames else f"a whole number of {dim}-d frames"
                    self.discard(key, f"{flat.size} values, expected {expected}")
                    flat = None
            result.append(None if flat is None else flat.reshape(-1, dim))
        return result

    def get_frames(self, key: str, dim: int, expected_frames: int | None) -> np.ndarray | None:
        """One cached ``[T, D]`` entry (see :meth:`get_frames_many`)."""
        return self.get_frames_many([key], dim, expected_frames)[0]


def frame_cache_for(fingerprint: dict[str, Any], sample_rate: int, root: Path, hop_ms: float = HOP_MS,
                    window_ms: float = WINDOW_MS, precision: str = "fp32") -> FrameCache:
    """The frame-embedding cache of the model with ``fingerprint``: the fingerprint, the input pipeline, the
    frame geometry (so it never mixes with clip embeddings) and the precision key it."""
    key = {**fingerprint, "input": input_pipeline(sample_rate), "output": "frames", "hop_ms": hop_ms,
           "window_ms": window_ms, "layout": "[T * D] float32, frames in time order", **precision_key(precision)}
    return FrameCache(root, key, shape=None)


def expected_frames(sample_rate: int, seconds: float | None, hop_ms: float = HOP_MS) -> int | None:
    """Frames of a clip cropped/padded to ``seconds`` (None for whole clips: their lengths differ)."""
    return None if seconds is None else frame_count(sample_rate, int(round(seconds * sample_rate)), hop_ms)


def all_cached_frames(cache: FrameCache, keys: Sequence[str], dim: int, sample_rate: int, seconds: float | None,
                      hop_ms: float = HOP_MS) -> ClipFrames | None:
    """Every clip's frames from ``cache``, or None when any is missing (or damaged: the full path recomputes it
    and names it)."""
    found: list[np.ndarray] = []
    for frames in cache.get_frames_many(keys, dim, expected_frames(sample_rate, seconds, hop_ms)):
        if frames is None:
            return None
        found.append(np.asarray(frames, dtype=np.float32))
    return ClipFrames(found, real_hop_ms(sample_rate, hop_ms))
