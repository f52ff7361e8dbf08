"""``run``: task card -> dataset -> splits -> model -> cached embeddings -> probe -> metric -> record."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from audiobench.cachedir import cache_subdir
from audiobench.datasets.base import DatasetIndex
from audiobench.errors import DatasetError, ProtocolError
from audiobench.registry import DATASETS, PROTOCOLS
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
    protocol: str | None = None  # None: the task card's protocol
    dataset_options: dict[str, Any] = field(default_factory=dict)  # override the card's (e.g. TAU22 split=25)
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
    from audiobench.protocols.splits import cross_validation, fixed_splits, official_folds

    if options.cv is not None:  # --cv 0 / --cv 1 reach cross_validation's error, not the official protocol
        return cross_validation(index, options.cv, options.seed)
    if card.splits["type"] == "fixed":
        return fixed_splits(index, card.split_names("train"), card.split_names("test"),
                            card.split_names("valid") or None)
    return official_folds(index, card.folds, str(options.data_dir) if options.data_dir else None)


def record_head(card: TaskCard, plan: Any, protocol: dict[str, Any], name: str, model: Any,
                complexity: dict[str, Any]) -> dict[str, Any]:
    """The first blocks of every result record: task, protocol, model and its measured complexity."""
    return {
        "task": {"name": card.name, "card": Path(card.path).name if card.path else None, "metric": card.metric,
                 "label_type": card.label_type},
        "protocol": {"official": plan.official, "splits": plan.description, **protocol},
        "model": {"name": name, "family": model.card.family, "checkpoint_sha256": model.checkpoint_sha256,
                  "checkpoint_file": Path(model.checkpoint_path).name if model.checkpoint_path else None,
                  "params": model.num_parameters(), "embedding_dim": model.embedding_dim,
                  "fingerprint": model.fingerprint()},
        "complexity": complexity,
    }


def _scatter(rows: Any, positions: list[int], total: int) -> Any:
    """``rows`` placed at ``positions`` of a zero array of ``total`` rows (clips a protocol never reads)."""
    import numpy as np

    full = np.zeros((total, rows.shape[1]), dtype=rows.dtype)
    full[positions] = rows
    return full


def _derived(card: TaskCard, complexity: dict[str, Any], metrics: dict[str, Any], grouped: bool) -> dict[str, Any]:
    """Record fields the card asks for: group sets and the spread over groups, the complexity-budget verdict."""
    from audiobench.report.derived import budget_verdict, device_spread

    extra: dict[str, Any] = {}
    if card.groups and grouped:
        members = tuple(dict.fromkeys(value for values in card.groups.values() for value in values))
        extra["groups"] = card.groups
        extra["group_spread"] = device_spread(metrics, card.metric, devices=members)
    if card.complexity_budget:
        extra["complexity_budget"] = budget_verdict(complexity, card.complexity_budget)
    return extra


def run(options: RunOptions, reporter: Reporter | None = None) -> tuple[dict[str, Any], Path]:
    """Run one model on one task; returns the result record and the path it was written to."""
    from audiobench import provenance
    from audiobench.complexity import cached_complexity
    from audiobench.device import resolve_device
    from audiobench.embeddings import cache_for, extract_embeddings
    from audiobench.models.loading import has_released_weights, load_model
    from audiobench.protocols.evaluate import evaluate_probe
    from audiobench.report.rescore import score_record_metrics
    from audiobench.results import check_writable, read_record, write_record

    reporter = reporter or Reporter()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    check_writable(options.output_dir)  # before any work, not after it
    card = get_task(options.task)
    if card.label_type == "events":  # sound event detection: frame embeddings and frame heads
        from audiobench.events import run_events

        return run_events(options, card, reporter)
    protocol_name = options.protocol or card.protocol
    protocol = PROTOCOLS.get(protocol_name)
    output = getattr(protocol, "output", "embedding")  # pretrained-head scores the head's outputs
    pretrained = has_released_weights(options.model)  # also fails early on an unknown model name
    dataset_options = {**card.dataset_options, **options.dataset_options}
    try:
        index = DATASETS.get(card.dataset)(options.data_dir, download=options.download, **dataset_options)
    except TypeError as error:  # an option the loader does not take
        raise DatasetError(f"Dataset {card.dataset!r} does not take the options {sorted(dataset_options)} ({error}).",
                           hint="Check --dataset-option names against the dataset's loader.") from None
    if card.label_type != ("multilabel" if index.multilabel else "multiclass"):
        raise DatasetError(f"Task {card.name!r} is {card.label_type} but the dataset gives "
                           f"{'sets of classes' if index.multilabel else 'one class per clip'}.",
                           hint="Fix the card's label_type or the dataset options (e.g. label_separator).")
    plan = _splits(card, index, options)
    reporter.message(f"{card.name}: {len(index.clips)} clips, {len(plan.splits)} splits ({plan.description})")

    t0 = time.perf_counter()
    device = resolve_device(options.device)
    model = load_model(options.model, checkpoint=options.checkpoint, pretrained=pretrained).to(device)
    timings["load_model_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    complexity = cached_complexity(model)  # the model's standard input, counted once per model
    timings["complexity_s"] = time.perf_counter() - t0

    settings = {**(card.protocol_options if protocol_name == card.protocol else {}), **options.probe_options,
                "seed": options.seed}
    build = getattr(protocol, "for_model", None)
    try:
        probe = build(model, index, **settings) if build is not None else protocol(**settings)
    except TypeError as error:  # an option the protocol does not take (e.g. --probe-c for mlp-probe)
        raise ProtocolError(f"Protocol {protocol_name!r} does not take the options {sorted(settings)} ({error}).",
                            hint="--probe-c applies to linear-probe; check the card's protocol_options.") from None
    t0 = time.perf_counter()
    cache = cache_for(model, cache_subdir("embeddings"), output)
    # a protocol that does not train (pretrained-head) needs outputs for the test clips only
    needed = (sorted({int(i) for split in plan.splits for i in split.test}) if getattr(protocol, "trains", True) is False
              else list(range(len(index.clips))))
    with reporter.progress(f"embeddings ({options.model})", len(needed)) as advance:
        computed, stats = extract_embeddings(model, [index.clips[i] for i in needed], card.clip_seconds, cache,
                                             options.batch_size, options.num_workers, advance, output=output)
    features = computed if len(needed) == len(index.clips) else _scatter(computed, needed, len(index.clips))
    timings["embeddings_s"] = time.perf_counter() - t0
    reporter.message(f"embeddings: {stats.computed} computed, {stats.reused} reused from the cache"
                     + (" (no embedding computed)" if stats.computed == 0 else ""))

    t0 = time.perf_counter()
    with reporter.progress(f"{protocol_name} on {len(plan.splits)} splits", len(plan.splits)) as advance:
        predictions = evaluate_probe(probe, features, index, plan, advance)
    metrics = score_record_metrics(predictions, card.all_metrics, card.groups)  # what `rescore` recomputes
    timings["protocol_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    record = {
        **record_head(card, plan, probe.describe(), options.model, model, complexity),
        "metrics": metrics,
        **_derived(card, complexity, metrics, predictions.group is not None),
        "dataset": {**index.manifest(), "data_dir": str(options.data_dir) if options.data_dir else None,
                    **({"options": dataset_options} if dataset_options else {})},
        "embeddings": {"total": stats.total, "computed": stats.computed, "reused": stats.reused,
                       "cache_key": cache.model_key,
                       **({"batch_size": options.batch_size} if stats.computed else {})},
        "timings": timings,
        "provenance": provenance.collect(device, options.seed),
    }
    path = write_record(record, options.output_dir, predictions)
    return read_record(path), path
