"""An event run's frame embeddings: from the cache without building the model, or computed.

When the model was built before (its descriptor is known, :mod:`audiobench.models.descriptor`), its complexity
count is cached and every clip's frames are in the frame cache, the model is not built: no weights are read and
no audio is decoded. Otherwise the model is built and the missing frames are computed
(:func:`audiobench.events.frames.extract_frames`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from audiobench.cachedir import cache_subdir
from audiobench.datasets.base import Clip
from audiobench.events.frame_cache import ClipFrames


@dataclass
class FrameOutputs:
    """Every clip's frames and what the record says about the model and the extraction."""

    frames: ClipFrames
    model: dict[str, Any]  # the record's model block
    complexity: dict[str, Any]
    extraction: dict[str, Any]  # the record's embeddings block


def all_cached(options: Any, clips: Sequence[Clip], seconds: float | None) -> FrameOutputs | None:
    """The frames when every clip's are cached and the model is known (see the module docstring), else None."""
    from audiobench.cache import warn_damaged
    from audiobench.complexity_cache import read_entry
    from audiobench.events.frame_cache import all_cached_frames, frame_cache_for
    from audiobench.input_pipeline import clip_keys
    from audiobench.model_outputs import descriptor_block
    from audiobench.models.descriptor import has_released_weights, recall

    descriptor = recall(options.model, options.checkpoint, has_released_weights(options.model))
    if descriptor is None:
        return None
    complexity = read_entry(descriptor.fingerprint, descriptor.name, descriptor.network_params)
    if complexity is None:
        return None
    cache = frame_cache_for(descriptor.fingerprint, descriptor.sample_rate, cache_subdir("embeddings"),
                            precision=options.precision)
    keys, _ = clip_keys([clip.path for clip in clips], seconds)
    frames = all_cached_frames(cache, keys, descriptor.embedding_dim, descriptor.sample_rate, seconds)
    if frames is None:
        warn_damaged(cache)  # a damaged entry was dropped here: the full path recomputes it
        return None
    extraction = {"kind": "frames", "hop_ms": frames.hop_ms, "total": len(clips), "computed": 0,
                  "reused": len(clips), "cache_key": cache.model_key, "precision": options.precision,
                  "model_built": False}
    return FrameOutputs(frames, descriptor_block(descriptor), complexity, extraction)


def computed(options: Any, clips: Sequence[Clip], seconds: float | None, device: str,
             progress: Callable[[str, int], Any], timings: dict[str, float]) -> FrameOutputs:
    """Build the model and compute the frames missing from the cache."""
    from audiobench.complexity import cached_complexity
    from audiobench.events.frames import extract_frames, frame_cache
    from audiobench.model_outputs import model_block
    from audiobench.models.descriptor import remember
    from audiobench.models.loading import has_released_weights, load_model

    t0 = time.perf_counter()
    pretrained = has_released_weights(options.model)
    model = load_model(options.model, checkpoint=options.checkpoint, pretrained=pretrained).to(device)
    remember(model, options.model, options.checkpoint, pretrained)
    timings["load_model_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    complexity = cached_complexity(model)
    timings["complexity_s"] = time.perf_counter() - t0
    cache = frame_cache(model, cache_subdir("embeddings"), precision=options.precision)
    with progress(f"frame embeddings ({options.model})", len(clips)) as advance:
        frames, stats = extract_frames(model, clips, seconds, cache, options.batch_size, options.num_workers, advance,
                                       precision=options.precision, threads=options.threads)
    extraction = {"kind": "frames", "hop_ms": frames.hop_ms, **stats.describe(), "cache_key": cache.model_key,
                  "precision": options.precision, "model_built": True,
                  **({"batch_size": options.batch_size} if stats.computed else {})}
    return FrameOutputs(frames, model_block(model, options.model), complexity, extraction)
