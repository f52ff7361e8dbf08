"""``run``: task card -> dataset -> splits -> model -> cached embeddings -> probe -> metric -> record."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from audiobench.cachedir import cache_subdir
from audiobench.datasets.base import DatasetIndex
from audiobench.registry import DATASETS, METRICS, PROTOCOLS
from audiobench.tasks import TaskCard, get_task


@dataclass
class RunOptions:
    """Everything ``audiobench run`` can be told."""

    task: str
    model: str
    data_dir: Path | None = None
    checkpoint: Path | None = None
    cv: int | None = None
    seed: int = 0
    device: str = "auto"
    batch_size: int = 32
    num_workers: int | None = None
    output_dir: Path = Path("results")
    download: bool = False
    probe_options: dict[str, Any] = field(default_factory=dict)


class Reporter:
    """Hooks through which a run tells the user what it does (the CLI draws rich progress bars)."""

    def message(self, text: str) -> None:
        """A one-line status message."""

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A context giving an ``advance(n)`` callable for long work."""
        yield lambda n: None


def _splits(card: TaskCard, index: DatasetIndex, options: RunOptions):
    from audiobench.protocols.splits import cross_validation, official_folds

    if options.cv is not None:  # --cv 0 / --cv 1 reach cross_validation's error, not the official protocol
        return cross_validation(index, options.cv, options.seed)
    return official_folds(index, card.folds, str(options.data_dir) if options.data_dir else None)


def run(options: RunOptions, reporter: Reporter | None = None) -> tuple[dict[str, Any], Path]:
    """Run one model on one task; returns the result record and the path it was written to."""
    from audiobench import provenance
    from audiobench.complexity import cached_complexity
    from audiobench.device import resolve_device
    from audiobench.embeddings import cache_for, extract_embeddings
    from audiobench.models.loading import has_released_weights, load_model
    from audiobench.predictions import Predictions, score_splits
    from audiobench.results import check_writable, read_record, summarise, write_record

    reporter = reporter or Reporter()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    check_writable(options.output_dir)  # before any work, not after it
    card = get_task(options.task)
    pretrained = has_released_weights(options.model)  # also fails early on an unknown model name
    index = DATASETS.get(card.dataset)(options.data_dir, download=options.download, **card.dataset_options)
    plan = _splits(card, index, options)
    reporter.message(f"{card.name}: {len(index.clips)} clips, {len(plan.splits)} splits ({plan.description})")

    t0 = time.perf_counter()
    device = resolve_device(options.device)
    model = load_model(options.model, checkpoint=options.checkpoint, pretrained=pretrained).to(device)
    timings["load_model_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    complexity = cached_complexity(model)  # the model's standard input, counted once per model
    timings["complexity_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cache = cache_for(model, cache_subdir("embeddings"))
    with reporter.progress(f"embeddings ({options.model})", len(index.clips)) as advance:
        features, stats = extract_embeddings(model, index.clips, card.clip_seconds, cache, options.batch_size,
                                             options.num_workers, advance)
    timings["embeddings_s"] = time.perf_counter() - t0
    reporter.message(f"embeddings: {stats.computed} computed, {stats.reused} reused from the cache"
                     + (" (no embedding computed)" if stats.computed == 0 else ""))

    t0 = time.perf_counter()
    labels = np.array([c.label for c in index.clips])
    metric = METRICS.get(card.metric)
    probe = PROTOCOLS.get(card.protocol)(**{**card.protocol_options, **options.probe_options, "seed": options.seed})
    tested: list[np.ndarray] = []
    split_names: list[str] = []
    scores: list[np.ndarray] = []
    with reporter.progress(f"{card.protocol} on {len(plan.splits)} splits", len(plan.splits)) as advance:
        for split in plan.splits:
            _, split_scores = probe.fit_predict(features[split.train], labels[split.train], features[split.test],
                                                num_classes=len(index.classes))
            tested.append(split.test)
            split_names += [split.name] * len(split.test)
            scores.append(split_scores)
            advance(1)
    rows = np.concatenate(tested) if tested else np.zeros(0, dtype=int)
    predictions = Predictions(clip_id=[index.clips[i].clip_id for i in rows], split=split_names,
                              target=labels[rows], scores=np.concatenate(scores) if scores else
                              np.zeros((0, len(index.classes)), np.float32), classes=index.classes)
    per_split = score_splits(predictions, metric)  # exactly what `audiobench rescore` recomputes
    timings["protocol_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    record = {
        "task": {"name": card.name, "card": Path(card.path).name if card.path else None, "metric": card.metric,
                 "label_type": card.label_type},
        "protocol": {"official": plan.official, "splits": plan.description, **probe.describe()},
        "model": {"name": options.model, "family": model.card.family, "checkpoint_sha256": model.checkpoint_sha256,
                  "checkpoint_file": Path(model.checkpoint_path).name if model.checkpoint_path else None,
                  "params": model.num_parameters(), "embedding_dim": model.embedding_dim,
                  "fingerprint": model.fingerprint()},
        "complexity": complexity,
        "metrics": {card.metric: summarise(per_split)},
        "dataset": {**index.manifest(), "data_dir": str(options.data_dir) if options.data_dir else None},
        "embeddings": {"total": stats.total, "computed": stats.computed, "reused": stats.reused,
                       "cache_key": cache.model_key,
                       **({"batch_size": options.batch_size} if stats.computed else {})},
        "timings": timings,
        "provenance": provenance.collect(device, options.seed),
    }
    path = write_record(record, options.output_dir, predictions)
    return read_record(path), path
