"""Frame embeddings ``[T, D]`` per clip at a fixed hop, computed by the model and cached in a verified
:class:`~audiobench.events.frame_cache.FrameCache` (the cache and its reading need no torch: that module)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from audiobench.clip_batches import ClipBatches
from audiobench.datasets.base import Clip
from audiobench.cache import warn_damaged
from audiobench.embeddings import EmbeddingStats, audio_cache_for, autocast, check_finite, compute_threads
from audiobench.events.frame_cache import ClipFrames, FrameCache, frame_cache_for
from audiobench.forward_chunks import forward_chunk, forward_in_chunks
from audiobench.frame_grid import HOP_MS, WINDOW_MS
from audiobench.input_pipeline import clip_keys
from audiobench.models.base import AudioModel
from audiobench.threads import plan_threads

__all__ = ["ClipFrames", "FrameCache", "extract_frames", "frame_cache", "model_hop_ms"]


def frame_cache(model: AudioModel, root: Path, hop_ms: float = HOP_MS, window_ms: float = WINDOW_MS,
                precision: str = "fp32") -> FrameCache:
    """The frame-embedding cache of ``model`` (see :func:`~audiobench.events.frame_cache.frame_cache_for`)."""
    return frame_cache_for(model.fingerprint(), model.sample_rate, root, hop_ms, window_ms, precision)


def model_hop_ms(model: AudioModel, hop_ms: float = HOP_MS, window_ms: float = WINDOW_MS) -> float:
    """The hop in ms that ``model.embed_frames`` really uses (the hop in whole samples)."""
    _, hop, _ = model.frame_geometry(model.sample_rate, window_ms, hop_ms)
    return 1000.0 * hop / model.sample_rate


def extract_frames(model: AudioModel, clips: Sequence[Clip], seconds: float | None, cache: FrameCache | None,
                   batch_size: int = 16, num_workers: int | None = None,
                   on_progress: Callable[[int], None] | None = None, hop_ms: float = HOP_MS,
                   window_ms: float = WINDOW_MS, precision: str = "fp32",
                   threads: int | None = None) -> tuple[ClipFrames, EmbeddingStats]:
    """Frame embeddings of ``clips`` (cropped/padded to ``seconds``; whole clips when None), reusing the cache.

    Clips of one fixed length are embedded in batches; whole clips one at a time (lengths differ). ``precision``
    ``bf16``/``fp16`` runs the model under autocast (frames are stored as float32). ``threads`` is the thread
    budget that decoding workers and compute threads share (:func:`audiobench.threads.plan_threads`).
    Every computed batch is cached at once, so an interrupted extraction resumes.
    """
    dim = model.embedding_dim
    fixed = None if seconds is None else model.frame_geometry(int(round(seconds * model.sample_rate)), window_ms,
                                                              hop_ms)[2]
    keys, digests = clip_keys([c.path for c in clips], seconds)
    result = cache.get_frames_many(keys, dim, fixed) if cache is not None else [None] * len(keys)
    if cache is not None:
        warn_damaged(cache)
    todo = [i for i, frames in enumerate(result) if frames is None]
    if on_progress is not None and len(clips) > len(todo):
        on_progress(len(clips) - len(todo))
    decoded, plan = 0, None
    if todo:
        todo_clips, todo_digests = [clips[i] for i in todo], [digests[i] for i in todo]
        audio = audio_cache_for(model.sample_rate, seconds, todo_clips)
        decoded = len(audio.missing(todo_digests)) if audio is not None else len(todo)
        plan = plan_threads(model.device.type, decoded, threads=threads, workers=num_workers)
        batches = ClipBatches(todo_clips, model.sample_rate, seconds, model.device, plan, batch_size, None, audio,
                              todo_digests)
        chunk = forward_chunk(model.device, batch_size, int(round(seconds * model.sample_rate)) if seconds else None)
        with compute_threads(plan), torch.inference_mode(), autocast(model.device, precision):
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
    stats = EmbeddingStats(total=len(clips), reused=len(clips) - len(todo), computed=len(todo), decoded=decoded,
                           threads=plan.describe() if plan is not None else None)
    return ClipFrames([np.asarray(f, dtype=np.float32) for f in result], model_hop_ms(model, hop_ms, window_ms)), stats
