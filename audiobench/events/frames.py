"""Frame embeddings ``[T, D]`` per clip at a fixed hop, cached in a verified :class:`EmbeddingCache`.

A cache entry is one clip's frames flattened to ``[T * D]`` float32 (the cache checks dtype, checksum and
finite values); reading it back checks that the length is a whole number of ``D``-sized frames and, for
clips of a fixed length, that ``T`` is the number of frames :meth:`AudioModel.frame_geometry` gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from audiobench.cache import EmbeddingCache
from audiobench.clip_batches import ClipBatches
from audiobench.datasets.base import Clip
from audiobench.embeddings import EmbeddingStats, _warn_damaged, audio_cache_for, check_finite, compute_threads
from audiobench.forward_chunks import forward_chunk, forward_in_chunks
from audiobench.input_pipeline import clip_keys, input_pipeline
from audiobench.models.base import AudioModel
from audiobench.threads import plan_threads

HOP_MS = 50.0  # the fixed timestamp hop of every model's embed_frames (audiobench/models/base.py)
WINDOW_MS = 160.0  # window centred on each timestamp (EfficientAT_HEAR / hear21passt convention)


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


def frame_cache(model: AudioModel, root: Path, hop_ms: float = HOP_MS, window_ms: float = WINDOW_MS) -> FrameCache:
    """The frame-embedding cache of ``model``: the model fingerprint, the input pipeline and the frame geometry
    key it (so it never mixes with clip embeddings)."""
    fingerprint = {**model.fingerprint(), "input": input_pipeline(model.sample_rate), "output": "frames",
                   "hop_ms": hop_ms, "window_ms": window_ms, "layout": "[T * D] float32, frames in time order"}
    return FrameCache(root, fingerprint, shape=None)


def model_hop_ms(model: AudioModel, hop_ms: float = HOP_MS, window_ms: float = WINDOW_MS) -> float:
    """The hop in ms that ``model.embed_frames`` really uses (the hop in whole samples)."""
    _, hop, _ = model.frame_geometry(model.sample_rate, window_ms, hop_ms)
    return 1000.0 * hop / model.sample_rate


def extract_frames(model: AudioModel, clips: Sequence[Clip], seconds: float | None, cache: FrameCache | None,
                   batch_size: int = 16, num_workers: int | None = None,
                   on_progress: Callable[[int], None] | None = None, hop_ms: float = HOP_MS,
                   window_ms: float = WINDOW_MS) -> tuple[ClipFrames, EmbeddingStats]:
    """Frame embeddings of ``clips`` (cropped/padded to ``seconds``; whole clips when None), reusing the cache.

    Clips of one fixed length are embedded in batches; whole clips one at a time (lengths differ).
    Every computed batch is cached at once, so an interrupted extraction resumes.
    """
    dim = model.embedding_dim
    fixed = None if seconds is None else model.frame_geometry(int(round(seconds * model.sample_rate)), window_ms,
                                                              hop_ms)[2]
    keys, digests = clip_keys([c.path for c in clips], seconds)
    result = cache.get_frames_many(keys, dim, fixed) if cache is not None else [None] * len(keys)
    if cache is not None:
        _warn_damaged(cache)
    todo = [i for i, frames in enumerate(result) if frames is None]
    if on_progress is not None and len(clips) > len(todo):
        on_progress(len(clips) - len(todo))
    decoded = 0
    if todo:
        todo_clips, todo_digests = [clips[i] for i in todo], [digests[i] for i in todo]
        audio = audio_cache_for(model.sample_rate, seconds, todo_clips)
        decoded = len(audio.missing(todo_digests)) if audio is not None else len(todo)
        plan = plan_threads(model.device.type, decoded, workers=num_workers)
        batches = ClipBatches(todo_clips, model.sample_rate, seconds, model.device, plan, batch_size, None, audio,
                              todo_digests)
        chunk = forward_chunk(model.device, batch_size, int(round(seconds * model.sample_rate)) if seconds else None)
        with compute_threads(plan), torch.inference_mode():
            for positions, waveforms, _ in batches:
                frames = forward_in_chunks(lambda part: model.embed_frames(part, window_ms=window_ms, hop_ms=hop_ms)[0],
                                           waveforms, chunk)
                frames = frames.float().cpu().numpy()
                computed = []
                for position, clip_frames in zip(positions, frames):
                    index = todo[position]
                    check_finite(model, clips[index], clip_frames)
                    result[index] = clip_frames
                    computed.append((keys[index], clip_frames.reshape(-1)))
                if cache is not None:
                    cache.put_many(computed)  # one index transaction per batch
                if on_progress is not None:
                    on_progress(len(positions))
    stats = EmbeddingStats(total=len(clips), reused=len(clips) - len(todo), computed=len(todo), decoded=decoded)
    return ClipFrames([np.asarray(f, dtype=np.float32) for f in result], model_hop_ms(model, hop_ms, window_ms)), stats
