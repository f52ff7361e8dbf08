"""``run``: task card -> dataset -> splits -> model -> cached embeddings -> probe -> metric -> record."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

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
    threads: int | None = None  # the thread budget (default: $AUDIOBENCH_THREADS, else the available cores)
    precision: str = "fp32"  # fp32, or bf16/fp16 autocast of the model's forward
    memory_budget_mb: float | None = 4096.0  # outputs past it live on disk and probes stream them (None: no limit)
    output_dir: Path = Path("results")
    download: bool = False
    protocol: str | None = None  # None: the task card's protocol
    dataset_options: dict[str, Any] = field(default_factory=dict)  # override the card's (e.g. TAU22 split=25)
    probe_options: dict[str, Any] = field(default_factory=dict)
    recipe: str | None = None  # --protocol finetune: recipe name (None: the default for model family and task)
    recipe_options: dict[str, Any] = field(default_factory=dict)  # override recipe fields (--recipe-option)
    epochs: int | None = None  # override the recipe's epochs
    resume: bool = False  # continue fine-tuning from the last checkpoint of the same run


class Reporter:
    """Hooks through which a run tells the user what it does (the CLI draws rich progress bars)."""

    def message(self, text: str) -> None:
        """A one-line status message."""

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A context giving an ``advance(n)`` callable for long work."""
        yield lambda n: None


def load_task_index(card: TaskCard, options: RunOptions) -> tuple[DatasetIndex, dict[str, Any]]:
    """The task's dataset, loaded with the card's and the user's dataset options (returned too), checked to
    give the card's kind of labels (one class, or sets of classes, per clip; event tasks check their own)."""
    dataset_options = {**card.dataset_options, **options.dataset_options}
    try:
        index = DATASETS.get(card.dataset)(options.data_dir, download=options.download, **dataset_options)
    except TypeError as error:  # an option the loader does not take
        raise DatasetError(f"Dataset {card.dataset!r} does not take the options {sorted(dataset_options)} ({error}).",
                           hint="Check --dataset-option names against the dataset's loader.") from None
    if card.label_type != "events" and card.label_type != ("multilabel" if index.multilabel else "multiclass"):
        raise DatasetError(f"Task {card.name!r} is {card.label_type} but the dataset gives "
                           f"{'sets of classes' if index.multilabel else 'one class per clip'}.",
                           hint="Fix the card's label_type or the dataset options (e.g. label_separator).")
    return index, dataset_options


def _splits(card: TaskCard, index: DatasetIndex, options: RunOptions):
    from audiobench.protocols.splits import cross_validation, fixed_splits, official_folds

    if options.cv is not None:  # --cv 0 / --cv 1 reach cross_validation's error, not the official protocol
        return cross_validation(index, options.cv, options.seed)
    if card.splits["type"] == "fixed":
        return fixed_splits(index, card.split_names("train"), card.split_names("test"),
                            card.split_names("valid") or None)
    return official_folds(index, card.folds, str(options.data_dir) if options.data_dir else None)


def record_head(card: TaskCard, plan: Any, protocol: dict[str, Any], model: dict[str, Any],
                complexity: dict[str, Any]) -> dict[str, Any]:
    """The first blocks of every result record: task, protocol (with the derived version of its code, see
    :func:`audiobench.code_version.protocol_version`), model (its block, see
    :func:`audiobench.model_outputs.model_block`), the input pipeline at the model's sample rate (decoder,
    resampler, crop policy and the version of that code, :func:`audiobench.input_pipeline.input_pipeline`) and
    the model's measured complexity."""
    from audiobench.code_version import protocol_version
    from audiobench.input_pipeline import input_pipeline

    implementation = protocol_version(str(protocol.get("name")))
    rate = (model.get("fingerprint") or {}).get("sample_rate")
    return {
        "task": {"name": card.name, "card": Path(card.path).name if card.path else None, "metric": card.metric,
                 "label_type": card.label_type},
        "protocol": {"official": plan.official, "splits": plan.description, **protocol,
                     **({"implementation": implementation} if implementation else {})},
        "model": model,
        **({"input_pipeline": input_pipeline(int(rate))} if rate else {}),
        "complexity": complexity,
    }


def _scatter(rows: Any, positions: list[int], total: int) -> Any:
    """``rows`` placed at ``positions`` of a zero array of ``total`` rows (clips a protocol never reads)."""
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


def _build_probe(protocol: Any, protocol_name: str, settings: dict[str, Any], model: Any, index: DatasetIndex) -> Any:
    build = getattr(protocol, "for_model", None)
    try:
        return build(model, index, **settings) if build is not None else protocol(**settings)
    except TypeError as error:  # an option the protocol does not take (e.g. --probe-c for mlp-probe)
        raise ProtocolError(f"Protocol {protocol_name!r} does not take the options {sorted(settings)} ({error}).",
                            hint="--probe-c applies to linear-probe; check the card's protocol_options.") from None


#: Protocols with a streaming equivalent, used when a task's outputs exceed the memory budget.
STREAMING_EQUIVALENT = {"linear-probe": "linear-probe-streaming"}


def _streaming_instead(name: str, features: Any, options: RunOptions, reporter: Reporter) -> tuple[str, Any]:
    """The streaming protocol to use for outputs on disk (the record names it), or a clear error."""
    streaming = STREAMING_EQUIVALENT.get(name)
    if streaming is None:
        raise ProtocolError(f"The outputs ({features.shape[0]} x {features.shape[1]} float32) exceed the memory "
                            f"budget of {options.memory_budget_mb:g} MB and protocol {name!r} needs them in memory.",
                            hint="Raise --memory-budget, or use --protocol linear-probe-streaming.")
    reporter.message(f"outputs over the memory budget ({options.memory_budget_mb:g} MB): kept on disk, "
                     f"protocol {streaming} instead of {name}")
    return streaming, PROTOCOLS.get(streaming)


def run(options: RunOptions, reporter: Reporter | None = None) -> tuple[dict[str, Any], Path]:
    """Run one model on one task; returns the result record and the path it was written to."""
    from audiobench import provenance
    from audiobench.model_outputs import all_cached, computed
    from audiobench.models.descriptor import has_released_weights
    from audiobench.cachedir import cache_subdir
    from audiobench.protocols.evaluate import evaluate_probe
    from audiobench.protocols.split_cache import DIRECTORY as SPLIT_CACHE_DIRECTORY, SplitCache
    from audiobench.report.rescore import score_record_metrics
    from audiobench.results import check_writable, read_record, write_record
    from audiobench.threads import compute_budget

    reporter = reporter or Reporter()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    check_writable(options.output_dir)  # before any work, not after it
    card = get_task(options.task)
    _check_finetune_options(options, options.protocol or card.protocol)
    if card.label_type == "events":  # sound event detection: frame embeddings and frame heads
        from audiobench.events import run_events

        return run_events(options, card, reporter)
    protocol_name = options.protocol or card.protocol
    if protocol_name == "finetune":  # the whole network trains per split: audiobench.finetune
        from audiobench.finetune.run import run_finetune

        return run_finetune(options, card, reporter)
    protocol = PROTOCOLS.get(protocol_name)
    output = getattr(protocol, "output", "embedding")  # pretrained-head scores the head's outputs
    has_released_weights(options.model)  # fails early on an unknown model name
    if options.device not in ("auto", "cpu"):
        from audiobench.device import resolve_device

        resolve_device(options.device)  # a GPU asked for and missing is an error, also when nothing is computed
    index, dataset_options = load_task_index(card, options)
    plan = _splits(card, index, options)
    reporter.message(f"{card.name}: {len(index.clips)} clips, {len(plan.splits)} splits ({plan.description})")
    settings = {**(card.protocol_options if protocol_name == card.protocol else {}), **options.probe_options,
                "seed": options.seed}
    if not hasattr(protocol, "for_model"):
        _build_probe(protocol, protocol_name, settings, None, index)  # a wrong option fails before any work

    t0 = time.perf_counter()
    # a protocol that does not train (pretrained-head) needs outputs for the test clips only
    needed = (sorted({int(i) for split in plan.splits for i in split.test}) if getattr(protocol, "trains", True) is False
              else list(range(len(index.clips))))
    clips = [index.clips[i] for i in needed]
    outputs = (all_cached(options, clips, card.clip_seconds, output) if not hasattr(protocol, "for_model") else None)
    if outputs is None:
        outputs = computed(options, clips, card.clip_seconds, output, reporter.progress, timings)
    features = outputs.features if len(needed) == len(index.clips) else _scatter(np.asarray(outputs.features),
                                                                                   needed, len(index.clips))
    if not isinstance(features, np.ndarray) and not getattr(protocol, "streaming", False):
        protocol_name, protocol = _streaming_instead(protocol_name, features, options, reporter)
        settings = {**options.probe_options, "seed": options.seed, "memory_budget_mb": options.memory_budget_mb}
    probe = _build_probe(protocol, protocol_name, settings, outputs.built, index)
    timings["embeddings_s"] = time.perf_counter() - t0 - timings.get("load_model_s", 0.0) - timings.get("complexity_s", 0.0)
    done = outputs.extraction
    reporter.message(f"embeddings: {done['computed']} computed, {done['reused']} reused from the cache"
                     + ("" if done["computed"] else " (no embedding computed, model not built)"
                        if not done["model_built"] else " (no embedding computed)"))

    t0 = time.perf_counter()
    split_cache = SplitCache(cache_subdir(SPLIT_CACHE_DIRECTORY))
    with reporter.progress(f"{protocol_name} on {len(plan.splits)} splits", len(plan.splits)) as advance, \
            compute_budget(options.threads):
        predictions = evaluate_probe(probe, features, index, plan, advance, options.threads, split_cache)
    _report_split_cache(split_cache, reporter)
    metrics = score_record_metrics(predictions, card.all_metrics, card.groups)  # what `rescore` recomputes
    timings["protocol_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    record = {
        **record_head(card, plan, probe.describe(), outputs.model, outputs.complexity),
        "metrics": metrics,
        **_derived(card, outputs.complexity, metrics, predictions.group is not None),
        "dataset": {**index.manifest(), "data_dir": str(options.data_dir) if options.data_dir else None,
                    **({"options": dataset_options} if dataset_options else {})},
        "embeddings": outputs.extraction,
        **split_cache.record_fields(),
        "timings": timings,
        "provenance": provenance.collect(outputs.device, options.seed),
    }
    path = write_record(record, options.output_dir, predictions)
    _drop_on_disk(features)
    return read_record(path), path


def _check_finetune_options(options: RunOptions, protocol_name: str) -> None:
    """Refuse fine-tuning options given to another protocol (they would be ignored without a word)."""
    given = [flag for flag, value in (("--recipe", options.recipe), ("--recipe-option", options.recipe_options),
                                      ("--epochs", options.epochs), ("--resume", options.resume)) if value]
    if given and protocol_name != "finetune":
        raise ProtocolError(f"{', '.join(given)} appl{'ies' if len(given) == 1 else 'y'} to --protocol finetune; "
                            f"this run's protocol is {protocol_name!r}.",
                            hint="Add --protocol finetune, or leave those options out.")


def _report_split_cache(cache: Any, reporter: Reporter) -> None:
    """Tell the user which splits' probe outputs came from the cache, and name damaged entries."""
    for path, why in cache.damaged:
        reporter.message(f"probe-output cache entry {path} was damaged ({why}): removed, the split fitted again")
    if cache.unwritable:
        reporter.message(f"probe outputs not cached ({cache.unwritable}); the scores are unaffected")
    if cache.reused:
        reporter.message(f"probe: {cache.reused} split(s) taken from the probe-output cache (same features, "
                         f"labels, settings, code and libraries), {cache.computed} fitted")


def _drop_on_disk(features: Any) -> None:
    """Remove a run's on-disk feature matrix once the record is written (the embedding cache keeps every row)."""
    import shutil

    directory = getattr(features, "directory", None)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)
