"""Compute clip embeddings in batches, once: cached entries are reused, missing ones computed.

Audio comes from the audio cache or is decoded once into it (:mod:`audiobench.clip_batches`); decoding
workers and compute threads share one thread budget (:mod:`audiobench.threads`). See
``benchmarks/embedding_throughput.py`` for the cost of each stage against the bare network.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from audiobench.cache import EmbeddingCache
from audiobench.clip_batches import ClipAudio, ClipBatches, ClipFailure, StagedBatch, check_batch
from audiobench.datasets.base import Clip
from audiobench.errors import AudiobenchError, CacheWarning
from audiobench.forward_chunks import forward_chunk, forward_in_chunks
from audiobench.input_pipeline import PIPELINE_MODULES, audio_identity, clip_key, clip_keys, input_pipeline
from audiobench.models.base import AudioModel
from audiobench.output_rows import OutputRows
from audiobench.output_cache import PRECISION_NAMES, cache_for_fingerprint, precision_key
from audiobench.threads import ThreadPlan, apply_compute_threads, plan_threads

__all__ = ["ClipAudio", "ClipBatches", "ClipFailure", "EmbeddingStats", "OUTPUTS", "PIPELINE_MODULES", "StagedBatch",
           "cache_for", "cache_for_fingerprint", "check_batch", "clip_key", "extract_embeddings", "input_pipeline"]

AUDIO_CACHE_GB_ENV = "AUDIOBENCH_AUDIO_CACHE_GB"  # largest audio cache a run may fill; 0 turns it off
DEFAULT_AUDIO_CACHE_GB = 64.0
UNKNOWN_CLIP_SECONDS = 10.0  # size estimate for whole clips of unknown duration

#: Autocast dtypes of ``--precision`` (``fp32`` runs without autocast).
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
assert tuple(PRECISIONS) == PRECISION_NAMES


@dataclass
class EmbeddingStats:
    """How many embeddings were reused from the cache and how many were computed, and how."""

    total: int
    reused: int
    computed: int
    decoded: int = 0  # clips decoded from their files (the rest of the computed ones came from the audio cache)
    threads: dict[str, Any] | None = field(default=None)

    def describe(self) -> dict[str, Any]:
        """The record's view: counts, plus the audio source and thread plan when something was computed."""
        out: dict[str, Any] = {"total": self.total, "computed": self.computed, "reused": self.reused}
        if self.computed:
            out.update(decoded=self.decoded, from_audio_cache=self.computed - self.decoded, threads=self.threads)
        return out


def default_num_workers() -> int:
    """Audio-decoding workers of the automatic thread plan for CPU decoding (see :mod:`audiobench.threads`)."""
    return plan_threads("cpu", clips_to_decode=1 << 20).workers


def check_finite(model: AudioModel, clip: Clip, values: np.ndarray) -> None:
    """Refuse a model output with NaN or infinite values (nothing is cached for that clip)."""
    if not np.isfinite(values).all():
        raise AudiobenchError(f"Model {model.card.name!r} produced NaN or infinite values for clip "
                              f"{clip.clip_id!r} ({clip.path}).",
                              hint="Check the clip (silence, clipping) and the checkpoint; nothing was cached for it.")


@dataclass(frozen=True)
class ModelOutput:
    """What is extracted per clip: the clip embedding, or the pretrained head's probabilities."""

    name: str
    from_waveforms: Callable[[AudioModel], Callable[[torch.Tensor], torch.Tensor]]
    from_inputs: Callable[[AudioModel], Callable[[torch.Tensor], torch.Tensor]]
    size: Callable[[AudioModel], int]


OUTPUTS: dict[str, ModelOutput] = {
    "embedding": ModelOutput("embedding", lambda m: m.embed, lambda m: m.embed_inputs, lambda m: m.embedding_dim),
    "head": ModelOutput("head", lambda m: m.probabilities, lambda m: m.head_inputs, lambda m: m.card.num_classes or 0),
    "logits": ModelOutput("logits", lambda m: m.logits, lambda m: m.logits_inputs, lambda m: m.card.num_classes or 0),
}


def cache_for(model: AudioModel, root: Path, output: str = "embedding", precision: str = "fp32") -> EmbeddingCache:
    """The embedding cache of ``model`` under ``root``: keyed by the model's fingerprint (weights, config,
    front-end, code version), the input pipeline, the output kind and the precision; every entry must be a
    vector of the output's size."""
    return cache_for_fingerprint(model.fingerprint(), model.sample_rate, OUTPUTS[output].size(model), root, output,
                                 precision)


def _warn_damaged(cache: EmbeddingCache, show: int = 5) -> None:
    """The twin of :func:`audiobench.cache.warn_damaged`: replace it by that at the next edit of this module's
    code (any code edit here changes the input pipeline's version, which keys every cached embedding)."""
    damaged = cache.take_damaged()
    for key, reason in damaged[:show]:
        warnings.warn(f"Damaged embedding cache entry {key} in {cache.directory}: {reason}; recomputing it.",
                      CacheWarning, stacklevel=3)
    if len(damaged) > show:
        warnings.warn(f"{len(damaged) - show} more damaged embedding cache entries under {cache.directory} are "
                      f"being recomputed.", CacheWarning, stacklevel=3)


def audio_cache_for(sample_rate: int, seconds: float | None, clips: Sequence[Clip], enabled: bool | None = None):
    """The shared audio cache at ``sample_rate`` and crop ``seconds``, or None when it is off or would grow past
    ``$AUDIOBENCH_AUDIO_CACHE_GB`` (default 64 GB) for these clips."""
    from audiobench.audio_cache import default_audio_cache

    if enabled is None:
        limit = float(os.environ.get(AUDIO_CACHE_GB_ENV, DEFAULT_AUDIO_CACHE_GB))
        clip_seconds = sum(seconds or c.duration or UNKNOWN_CLIP_SECONDS for c in clips)
        enabled = 0 < clip_seconds * sample_rate * 4 / 1e9 <= limit
    return default_audio_cache(sample_rate, seconds, audio_identity(sample_rate)) if enabled else None


@contextlib.contextmanager
def compute_threads(plan: ThreadPlan) -> Iterator[None]:
    """Run with the plan's compute threads, then give torch its previous thread count back."""
    before = torch.get_num_threads()
    apply_compute_threads(plan)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to the precision's dtype on ``device`` (a no-op context for fp32)."""
    precision_key(precision)
    dtype = PRECISIONS[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def extract_embeddings(
    model: AudioModel,
    clips: Sequence[Clip],
    seconds: float | None,
    cache: EmbeddingCache | None = None,
    batch_size: int = 32,
    num_workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    output: str = "embedding",
    threads: int | None = None,
    use_audio_cache: bool | None = None,
    precision: str = "fp32",
    rows: OutputRows | None = None,
) -> tuple[np.ndarray, EmbeddingStats]:
    """Embeddings ``[len(clips), D]`` in clip order, plus reuse statistics.

    Every finished batch is written to ``cache`` at once, so an interrupted extraction resumes.
    ``on_progress(n)`` is called with the number of clips done since the last call. ``output="head"``
    extracts the pretrained head's probabilities ``[len(clips), num_classes]`` instead (see :data:`OUTPUTS`).
    ``threads``/``num_workers`` override the automatic thread plan; ``use_audio_cache`` None decides by size.
    With ``rows`` (e.g. an on-disk feature matrix, :mod:`audiobench.output_rows`) the outputs are written
    there and ``rows.result()`` is returned, so memory never holds all of them.
    """
    keys, digests = clip_keys([c.path for c in clips], seconds)
    rows = rows if rows is not None else OutputRows(len(clips), OUTPUTS[output].size(model))
    todo = []
    for index, cached in (cache.scan(keys) if cache is not None else enumerate([None] * len(keys))):
        if cached is None:
            todo.append(index)
        else:
            rows.put(index, cached)
    if cache is not None:
        _warn_damaged(cache)
    if on_progress is not None and len(clips) > len(todo):
        on_progress(len(clips) - len(todo))
    stats = EmbeddingStats(total=len(clips), reused=len(clips) - len(todo), computed=len(todo))
    if todo:
        todo_clips, todo_digests = [clips[i] for i in todo], [digests[i] for i in todo]
        audio = audio_cache_for(model.sample_rate, seconds, todo_clips, use_audio_cache)
        stats.decoded = len(audio.missing(todo_digests)) if audio is not None else len(todo)
        device = model.device
        plan = plan_threads(device.type, stats.decoded, threads, num_workers)
        stats.threads = plan.describe()
        kind = OUTPUTS[output]
        batches = ClipBatches(todo_clips, model.sample_rate, seconds, device, plan, batch_size, model.input_stage(),
                              audio, todo_digests)
        chunk = forward_chunk(device, batch_size, int(round(seconds * model.sample_rate)) if seconds else None)
        with compute_threads(plan), torch.inference_mode(), autocast(device, precision):
            for positions, inputs, staged in batches:
                embed = kind.from_inputs(model) if staged else kind.from_waveforms(model)
                embeddings = forward_in_chunks(embed, inputs, chunk).float().cpu().numpy()
                for position, embedding in zip(positions, embeddings):
                    index = todo[position]
                    check_finite(model, clips[index], embedding)
                    rows.put(index, embedding)
                if cache is not None:
                    cache.put_many(zip([keys[todo[position]] for position in positions], embeddings))
                if on_progress is not None:
                    on_progress(len(positions))
        if audio is not None:
            _warn_damaged_audio(audio)
    return rows.result(), stats


def _warn_damaged_audio(audio: Any) -> None:
    for key, reason in audio.take_damaged()[:5]:
        warnings.warn(f"Damaged audio cache entry {key}: {reason}; it was decoded again.", CacheWarning, stacklevel=3)
