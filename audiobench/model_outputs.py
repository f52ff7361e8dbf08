"""A run's model outputs (embeddings or head scores) per clip: from the cache, or computed.

When the model was built before (its descriptor is known, :mod:`audiobench.models.descriptor`), every
needed output is in the cache and the complexity count is cached too, nothing is built: torch is not
imported, no weights are read and no audio is decoded. Otherwise the model is built and the missing
outputs are computed (:func:`audiobench.embeddings.extract_embeddings`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from audiobench.cachedir import cache_subdir
from audiobench.datasets.base import Clip


@dataclass
class ModelOutputs:
    """Outputs ``[len(clips), D]`` in clip order and what the record says about the model and the extraction."""

    features: np.ndarray
    model: dict[str, Any]  # the record's model block
    complexity: dict[str, Any]
    extraction: dict[str, Any]  # the record's embeddings block
    device: str | None  # None when nothing was computed on a device
    built: Any = None  # the built AudioModel, when it was built


def model_block(model: Any, name: str) -> dict[str, Any]:
    """The record's model block of a built model (with ``code_roots`` where its code version is derived from
    them, so that a later check can tell whether today's model code is the code that made the record)."""
    from audiobench.models.descriptor import code_roots

    roots = code_roots(model)
    return {"name": name, "family": model.card.family, "checkpoint_sha256": model.checkpoint_sha256,
            "checkpoint_file": Path(model.checkpoint_path).name if model.checkpoint_path else None,
            "params": model.num_parameters(), "embedding_dim": model.embedding_dim, "fingerprint": model.fingerprint(),
            **({"code_roots": list(roots)} if roots is not None else {})}


def descriptor_block(descriptor: Any) -> dict[str, Any]:
    """The record's model block of a model known by its descriptor (the same as :func:`model_block` of it built)."""
    return {"name": descriptor.name, "family": descriptor.family, "checkpoint_sha256": descriptor.checkpoint_sha256,
            "checkpoint_file": descriptor.checkpoint_file, "params": descriptor.params,
            "embedding_dim": descriptor.embedding_dim, "fingerprint": descriptor.fingerprint,
            "code_roots": list(descriptor.code_roots)}


def all_cached(options: Any, clips: Sequence[Clip], seconds: float | None, output: str) -> ModelOutputs | None:
    """The outputs when every one is cached and the model is known (see the module docstring), else None."""
    from audiobench.cache import warn_damaged
    from audiobench.complexity_cache import read_entry
    from audiobench.output_cache import cache_for_fingerprint
    from audiobench.input_pipeline import clip_keys
    from audiobench.models.descriptor import recall
    from audiobench.models.descriptor import has_released_weights

    descriptor = recall(options.model, options.checkpoint, has_released_weights(options.model))
    if descriptor is None:
        return None
    size = descriptor.embedding_dim if output == "embedding" else descriptor.num_classes
    cache = cache_for_fingerprint(descriptor.fingerprint, descriptor.sample_rate, size, cache_subdir("embeddings"),
                                  output, options.precision)
    complexity = read_entry(descriptor.fingerprint, descriptor.name, descriptor.network_params)
    if complexity is None:
        return None
    keys, _ = clip_keys([clip.path for clip in clips], seconds)
    rows = _rows(options, clips, size, cache.model_key)
    for index, row in cache.scan(keys):
        if row is None:  # something to compute
            warn_damaged(cache)  # a damaged entry was dropped here: the full path recomputes it
            return None
        rows.put(index, row)
    extraction = {"total": len(clips), "computed": 0, "reused": len(clips), "cache_key": cache.model_key,
                  "precision": options.precision, "model_built": False, **_store(rows)}
    return ModelOutputs(rows.result(), descriptor_block(descriptor), complexity, extraction, None)


def _rows(options: Any, clips: Sequence[Clip], size: int, cache_key: str) -> Any:
    from audiobench.cache import stable_hash
    from audiobench.output_rows import OutputRows

    identity = {"cache": cache_key, "clips": stable_hash([str(clip.path) for clip in clips])}
    return OutputRows.for_run(len(clips), size, options.memory_budget_mb, identity)


def _store(rows: Any) -> dict[str, Any]:
    """The record's note on where the outputs were held."""
    if rows.on_disk is None:
        return {}
    return {"store": f"on-disk feature matrix {rows.count} x {rows.dim} float32 (over the memory budget)"}


def computed(options: Any, clips: Sequence[Clip], seconds: float | None, output: str,
             progress: Callable[[str, int], Any], timings: dict[str, float]) -> ModelOutputs:
    """Build the model and compute the outputs missing from the cache."""
    from audiobench.complexity import cached_complexity
    from audiobench.device import resolve_device
    from audiobench.embeddings import cache_for, extract_embeddings
    from audiobench.models.descriptor import remember
    from audiobench.models.loading import has_released_weights, load_model

    t0 = time.perf_counter()
    device = resolve_device(options.device)
    pretrained = has_released_weights(options.model)
    model = load_model(options.model, checkpoint=options.checkpoint, pretrained=pretrained).to(device)
    remember(model, options.model, options.checkpoint, pretrained)
    timings["load_model_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    complexity = cached_complexity(model)  # the model's standard input, counted once per model
    timings["complexity_s"] = time.perf_counter() - t0
    cache = cache_for(model, cache_subdir("embeddings"), output, options.precision)
    rows = _rows(options, clips, cache.shape[0], cache.model_key)
    with progress(f"embeddings ({options.model})", len(clips)) as advance:
        features, stats = extract_embeddings(model, clips, seconds, cache, options.batch_size, options.num_workers,
                                             advance, output=output, threads=options.threads,
                                             precision=options.precision, rows=rows)
    extraction = {**stats.describe(), "cache_key": cache.model_key, "precision": options.precision,
                  "model_built": True, **_store(rows), **({"batch_size": options.batch_size} if stats.computed else {})}
    return ModelOutputs(features, model_block(model, options.model), complexity, extraction, device, model)
