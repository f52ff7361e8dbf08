"""HEAR 2021 event scoring and post-processing, as hear-eval-kit (v2021.1.3) does them.

* :func:`onset_fmeasure`: ``heareval/score.py`` ``event_onset_{200,50}ms_fms``: sed_eval
  ``EventBasedMetrics(evaluate_onset=True, evaluate_offset=False, t_collar=collar)`` (other settings at
  sed_eval's defaults), evaluated file by file, the overall (micro) F-measure.
* :func:`frame_events` / :func:`hear_postprocess`: ``heareval/predictions/task_predictions.py``
  ``create_events_from_prediction``: the frame scores (probabilities) are median-filtered per class with
  ``scipy.ndimage.median_filter`` over ``round(median_filter_ms / mean hop)`` frames, binarised with
  ``score > 0.5``; each run of consecutive active frames is one event from the first to the last active
  frame's timestamp, kept when ``end - start >= min_duration``.
* :func:`choose_min_duration`: the grid search on validation (``EVENT_POSTPROCESSING_GRID``: median filter
  250 ms, minimum duration {125, 250} ms, or the task's own grid), scored with the task's primary onset
  F-measure; NaN counts as 0 and ties go to the larger grid value (the kit sorts (score, params) descending).

Events are ``(file, onset_s, offset_s, label)`` tuples; frame scores are ``[T, C]`` arrays with their
``timestamps_ms [T]`` (frame centres).
"""

from __future__ import annotations

import math
import warnings
from typing import Iterable, Mapping, Sequence

import numpy as np
from scipy.ndimage import median_filter

Event = tuple[str, float, float, str]
ScoreTable = tuple[np.ndarray, np.ndarray]  # (scores [T, C], timestamps_ms [T])

#: audiobench metric name -> onset collar (s) of the HEAR score it reproduces.
ONSET_COLLARS = {"onset-fms-200ms": 0.2, "onset-fms-50ms": 0.05}
THRESHOLD = 0.5


def onset_collar(metric: str) -> float:
    """The onset collar in seconds of metric ``onset-fms-200ms`` / ``onset-fms-50ms``."""
    if metric not in ONSET_COLLARS:
        raise KeyError(f"{metric!r} is not a HEAR onset F-measure ({', '.join(ONSET_COLLARS)})")
    return ONSET_COLLARS[metric]


def _sed_eval_items(events: Iterable[Event]) -> dict[str, list[dict[str, object]]]:
    by_file: dict[str, list[dict[str, object]]] = {}
    for file, onset, offset, label in events:
        by_file.setdefault(str(file), []).append(
            {"file": str(file), "event_label": str(label), "event_onset": float(onset), "event_offset": float(offset)})
    return by_file


def onset_fmeasure(reference: Iterable[Event], estimated: Iterable[Event], collar_s: float,
                   files: Iterable[str] | None = None, classes: Sequence[str] | None = None) -> float:
    """HEAR's onset-only event-based overall (micro) F-measure with an onset collar of ``collar_s``.

    ``files``: the evaluated files (default: every file named in either list; a file missing from both
    lists adds nothing). NaN when there is no estimated (or no reference) event at all, as sed_eval returns.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dcase_util imports pkg_resources
        import sed_eval

    ref, est = _sed_eval_items(reference), _sed_eval_items(estimated)
    names = sorted(set(ref) | set(est) | set(files or ()))
    labels = list(classes) if classes is not None else sorted(
        {e["event_label"] for items in (*ref.values(), *est.values()) for e in items})
    metrics = sed_eval.sound_event.EventBasedMetrics(event_label_list=labels, evaluate_onset=True,
                                                     evaluate_offset=False, t_collar=float(collar_s))
    for name in names:
        metrics.evaluate(reference_event_list=ref.get(name, []), estimated_event_list=est.get(name, []))
    return float(metrics.results_overall_metrics()["f_measure"]["f_measure"])


def frame_events(scores: np.ndarray, timestamps_ms: np.ndarray, classes: Sequence[str], median_filter_ms: float = 250,
                 min_duration_ms: float = 125, threshold: float = THRESHOLD) -> list[tuple[float, float, str]]:
    """Events ``(onset_s, offset_s, label)`` of one clip from its frame scores ``[T, C]`` (see module doc)."""
    scores = np.asarray(scores, dtype=np.float64)
    timestamps = np.asarray(timestamps_ms, dtype=np.float64)
    if scores.ndim != 2 or scores.shape != (len(timestamps), len(classes)):
        raise ValueError(f"scores {scores.shape} do not match {len(timestamps)} timestamps x {len(classes)} classes")
    order = np.argsort(timestamps, kind="stable")
    scores, timestamps = scores[order], timestamps[order]
    if median_filter_ms and len(timestamps) > 1:
        width = int(round(median_filter_ms / float(np.mean(np.diff(timestamps)))))
        if width:
            scores = median_filter(scores, size=(width, 1))
    active = scores > threshold
    events = []
    for c, label in enumerate(classes):
        padded = np.concatenate([[False], active[:, c], [False]]).astype(np.int8)
        starts, ends = np.flatnonzero(np.diff(padded) == 1), np.flatnonzero(np.diff(padded) == -1) - 1
        for first, last in zip(starts, ends):
            start, end = timestamps[first], timestamps[last]
            if end - start >= min_duration_ms:
                events.append((start / 1000.0, end / 1000.0, label))
    return sorted(events, key=lambda e: e[0])


def hear_postprocess(score_tables: Mapping[str, ScoreTable], classes: Sequence[str], median_filter_ms: float = 250,
                     min_duration_ms: float = 125, threshold: float = THRESHOLD) -> list[Event]:
    """Events ``(file, onset_s, offset_s, label)`` of every file of ``score_tables`` (file -> (scores, ms))."""
    return [(file, onset, offset, label) for file, (scores, timestamps) in score_tables.items()
            for onset, offset, label in frame_events(scores, timestamps, classes, median_filter_ms, min_duration_ms,
                                                     threshold)]


def choose_min_duration(valid_tables: Mapping[str, ScoreTable], valid_reference: Iterable[Event],
                        classes: Sequence[str], collar_s: float, median_filter_ms: float = 250,
                        candidates: Sequence[float] = (125, 250)) -> tuple[float, dict[float, float]]:
    """The minimum event duration (ms) of ``candidates`` with the best validation onset F-measure, and the
    F-measure of each candidate (NaN counted as 0; ties go to the larger candidate, as in hear-eval-kit).
    A single candidate is returned without scoring (MAESTRO's grid, early stopping on the loss)."""
    candidates = list(candidates)
    if not candidates:
        raise ValueError("no minimum-duration candidates")
    if len(candidates) == 1:
        return candidates[0], {}
    reference = list(valid_reference)
    scores = {}
    for candidate in candidates:
        events = hear_postprocess(valid_tables, classes, median_filter_ms, candidate)
        value = onset_fmeasure(reference, events, collar_s, files=valid_tables, classes=classes)
        scores[candidate] = 0.0 if math.isnan(value) else value
    best = max(candidates, key=lambda c: (scores[c], c))
    return best, scores


def clip_events(clips: Iterable[object], classes: Sequence[str]) -> list[Event]:
    """Reference events ``(clip_id, onset_s, offset_s, label)`` from clips with ``events`` (class indices)."""
    return [(clip.clip_id, onset, offset, classes[c]) for clip in clips for onset, offset, c in (clip.events or ())]
