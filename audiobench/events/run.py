"""The runner path of event tasks: frame embeddings -> frame head per split -> events predictions -> metrics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from audiobench.datasets.base import Clip, DatasetIndex
from audiobench.code_version import protocol_version
from audiobench.errors import DatasetError, ProtocolError
from audiobench.events import onset as onset_metrics, postprocess
from audiobench.events.heads import HEADS, FrameHead
from audiobench.events.predictions import EventPredictions
from audiobench.events.scoring import check_metrics, metric_notes, score_event_predictions
from audiobench.events.targets import frame_targets, frames_within
from audiobench.protocols.split_cache import SplitCache, split_key
from audiobench.tasks import TaskCard

POSTPROCESS_OPTIONS = ("median_filter_ms", "min_duration_ms")


def scored_span(clip: Clip, seconds: float | None) -> tuple[float, tuple[tuple[float, float, int], ...]]:
    """The duration that is scored (the clip, cut to ``seconds`` when the model sees only its start) and the
    reference events within it."""
    duration = float(clip.duration) if seconds is None else min(float(clip.duration), float(seconds))
    events = tuple((float(a), min(float(b), duration), int(c)) for a, b, c in clip.events or () if a < duration)
    return duration, events


def check_event_index(index: DatasetIndex, task: str) -> None:
    """Every clip of an event task needs strong labels (possibly none) and a duration."""
    for clip in index.clips:
        if clip.events is None or clip.duration is None:
            what = "strong labels (events)" if clip.events is None else "a duration"
            raise DatasetError(f"Task {task!r}: clip {clip.clip_id!r} ({clip.path}) has no {what}.",
                               hint="Event tasks need every clip's events (onset, offset, class) and duration; "
                                    "check the dataset's metadata and the card's label_type.")


def build_head(name: str, options: dict[str, Any], device: str) -> FrameHead:
    """The frame head of protocol ``name`` with its options (ProtocolError for unknown names or options)."""
    if name not in HEADS:
        raise ProtocolError(f"Protocol {name!r} does not apply to event tasks.",
                            hint=f"Event tasks take one of: {', '.join(HEADS)}.")
    try:
        return HEADS[name](device=device, **options)
    except TypeError as error:
        raise ProtocolError(f"Protocol {name!r} does not take the options {sorted(options)} ({error}).",
                            hint="Check the card's protocol_options and --probe-* options.") from None


def _split_clips(plan: Any, number: int, validate: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Train, test and validation clips of split ``number``; with ``validate``, a fold plan without
    validation clips validates on the next fold, taken out of the training clips (the HEAR convention)."""
    part = plan.splits[number]
    train, valid = np.asarray(part.train), part.valid
    if validate and valid is None and len(plan.splits) > 1:
        valid = np.intersect1d(plan.splits[(number + 1) % len(plan.splits)].test, train)
        train = np.setdiff1d(train, valid)
    return train, np.asarray(part.test), (valid if validate and valid is not None and len(valid) else None)


def train_and_score(head: FrameHead, frames: list[np.ndarray], hop_ms: float, index: DatasetIndex, plan: Any,
                    seconds: float | None, advance: Any = lambda n: None,
                    on_valid: Callable[[str, EventPredictions | None], None] | None = None,
                    cache: SplitCache | None = None) -> EventPredictions:
    """Fit ``head`` on each split's training clips, score its test clips: the events predictions.
    With ``on_valid``, each split's validation clips are scored too and passed to it (None when there are none).
    With ``cache``, a split's frame scores are taken from it when the head, its code, the libraries and the
    split's frames and targets are unchanged (:mod:`audiobench.protocols.split_cache`), and stored otherwise."""
    spans = [scored_span(clip, seconds) for clip in index.clips]
    stamps = [np.arange(frames_within(np.arange(len(f)) * hop_ms, spans[i][0]), dtype=np.float64) * hop_ms
              for i, f in enumerate(frames)]
    kept = [frames[i][:len(stamps[i])] for i in range(len(frames))]
    classes = len(index.classes)
    columns: tuple[list, ...] = ([], [], [], [], [], [])
    implementation = protocol_version(head.name) if cache is not None else None

    def collect(rows: list[int], scores: list[np.ndarray], name: str, into: tuple[list, ...]) -> tuple[list, ...]:
        for i, clip_scores in zip(rows, scores):
            for column, value in zip(into, (index.clips[i].clip_id, name, spans[i][0], stamps[i], clip_scores,
                                            spans[i][1])):
                column.append(value)
        return into

    for number, part in enumerate(plan.splits):
        train, test, valid = _split_clips(plan, number, on_valid is not None)
        train = [int(i) for i in train]
        tested = [int(i) for i in test]
        validated = [] if on_valid is None or valid is None else [int(i) for i in valid]
        test_scores, valid_scores = _split_scores(
            head, [kept[i] for i in train], [frame_targets(spans[i][1], stamps[i], classes) for i in train],
            ([kept[i] for i in tested], [kept[i] for i in validated]), classes, cache, implementation)
        collect(tested, test_scores, part.name, columns)
        if on_valid is not None:
            found = collect(validated, valid_scores, part.name, ([], [], [], [], [], [])) if validated else None
            on_valid(part.name, None if found is None else EventPredictions.from_clips(
                found[0], found[1], found[2], index.classes, found[3], found[4], found[5]))
        advance(1)
    clip_id, split, duration, timestamps, scores, events = columns
    return EventPredictions.from_clips(clip_id, split, duration, index.classes, timestamps, scores, events)


def _split_scores(head: FrameHead, train_x: list[np.ndarray], train_y: list[np.ndarray],
                  scored: tuple[list[np.ndarray], ...], classes: int, cache: SplitCache | None,
                  implementation: str | None) -> list[list[np.ndarray]]:
    """Frame scores ``[T_i, C]`` of each group of ``scored`` clips (test, validation; each group predicted on its
    own, as batches are formed within a group) after fitting ``head`` on the training clips, or the cached ones
    of the same fit (``implementation``: the head's protocol code version; None: no caching)."""
    lengths = [len(x) for group in scored for x in group]
    key = None
    if cache is not None and implementation is not None and sum(lengths):
        identity = {**head.describe(), "seed": head.seed, "device": head.device, "implementation": implementation}
        key = split_key(identity, {"x_train": train_x, "y_train": train_y,
                                   **{f"x_scored_{n}": group for n, group in enumerate(scored)}})
    if key is not None:
        entry = cache.get(key, sum(lengths), classes)
        if entry is not None:
            cache.reuse()
            flat = np.split(entry[0], np.cumsum(lengths)[:-1])
            bounds = np.cumsum([0] + [len(group) for group in scored])
            return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    head.fit(train_x, train_y)
    groups = [head.predict(group) if group else [] for group in scored]
    if key is not None:
        cache.put(key, np.concatenate([s for group in groups for s in group]), {})
    return groups


def run_events(options: Any, card: TaskCard, reporter: Any = None) -> tuple[dict[str, Any], Path]:
    """``audiobench run`` for a ``label_type: events`` card; returns the record and its path."""
    from audiobench import provenance
    from audiobench.cachedir import cache_subdir
    from audiobench.device import resolve_device
    from audiobench.events import frame_outputs
    from audiobench.models.descriptor import has_released_weights
    from audiobench.results import check_writable, read_record, summarise, write_record
    from audiobench.threads import compute_budget
    from audiobench.protocols.split_cache import DIRECTORY as SPLIT_CACHE_DIRECTORY
    from audiobench.runner import Reporter, _derived, _report_split_cache, _splits, load_task_index, record_head

    reporter = reporter or Reporter()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    check_writable(options.output_dir)
    protocol_name = options.protocol or card.protocol
    chosen = {**(card.protocol_options if protocol_name == card.protocol else {}), **options.probe_options}
    settings_ms = {k: chosen.pop(k) for k in POSTPROCESS_OPTIONS if k in chosen}
    metric_names = card.all_metrics
    check_metrics(metric_names)
    onset_names = onset_metrics.onset_names(metric_names)
    if "min_duration_ms" in settings_ms and not onset_names:
        raise ProtocolError("Option min_duration_ms applies only to the onset-fms-* metrics, which the card "
                            "does not list.", hint="Remove min_duration_ms or add an onset-fms-* metric.")
    min_durations = onset_metrics.candidates(settings_ms.get("min_duration_ms")) if onset_names else []
    device = resolve_device(options.device)
    head = build_head(protocol_name, {**chosen, "seed": options.seed}, device)
    has_released_weights(options.model)  # fails early on an unknown model name
    index, dataset_options = load_task_index(card, options)
    check_event_index(index, card.name)
    plan = _splits(card, index, options)
    reporter.message(f"{card.name}: {len(index.clips)} clips, {len(plan.splits)} splits ({plan.description})")

    t0 = time.perf_counter()
    outputs = (frame_outputs.all_cached(options, index.clips, card.clip_seconds)
               or frame_outputs.computed(options, index.clips, card.clip_seconds, device, reporter.progress, timings))
    frames, done = outputs.frames, outputs.extraction
    timings["embeddings_s"] = (time.perf_counter() - t0 - timings.get("load_model_s", 0.0)
                               - timings.get("complexity_s", 0.0))
    reporter.message(f"frame embeddings: {done['computed']} computed, {done['reused']} reused from the cache"
                     + ("" if done["model_built"] else " (model not built)"))

    t0 = time.perf_counter()
    settings = postprocess.settings(float(settings_ms.get("median_filter_ms", postprocess.DEFAULT_MEDIAN_FILTER_MS)),
                                    frames.hop_ms)
    collar = onset_metrics.selection_collar(card.metric, metric_names) if onset_names else 0.0
    chooser = (onset_metrics.MinDurationChooser(min_durations, collar, settings["median_filter_ms"])
               if onset_names else None)
    split_cache = SplitCache(cache_subdir(SPLIT_CACHE_DIRECTORY))
    with reporter.progress(f"{protocol_name} on {len(plan.splits)} splits", len(plan.splits)) as advance, \
            compute_budget(options.threads):
        predictions = train_and_score(head, frames.frames, frames.hop_ms, index, plan, card.clip_seconds, advance,
                                      on_valid=chooser, cache=split_cache)
    _report_split_cache(split_cache, reporter)
    if chooser is not None:
        settings.update(chooser.settings())
    timings["protocol_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    per_split = score_event_predictions(predictions, metric_names, settings)  # what `rescore` recomputes
    metrics = {name: summarise(values) for name, values in per_split.items()}
    timings["scoring_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    record = {
        **record_head(card, plan, head.describe(), outputs.model, outputs.complexity),
        "metrics": metrics,
        "metric_notes": metric_notes(metric_names, settings),
        "postprocessing": settings,
        **_derived(card, outputs.complexity, metrics, False),
        "dataset": {**index.manifest(), "data_dir": str(options.data_dir) if options.data_dir else None,
                    **({"options": dataset_options} if dataset_options else {})},
        "embeddings": done,
        **split_cache.record_fields(),
        "timings": timings,
        "provenance": provenance.collect(device, options.seed),
    }
    path = write_record(record, options.output_dir, predictions)
    return read_record(path), path
