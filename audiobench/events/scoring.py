"""Score an events predictions file with the DCASE task 4 metrics of :mod:`audiobench.metrics_sed`.

Per split: the reference events and durations become the ground-truth tables; the median-filtered frame
scores become sed_scores_eval score tables (in memory) and, thresholded, psds_eval/sed_eval detections
at the 50 operating points and at 0.5. Record metric keys and what they are:

- ``psds1-psds-eval``, ``psds2-psds-eval``: psds_eval over the 50 operating points;
- ``psds1-sed-scores-eval``, ``psds2-sed-scores-eval``: sed_scores_eval on the score series;
- ``intersection-f1`` (psds_eval macro F1), ``collar-f1-macro|micro``, ``segment-f1-macro|micro`` (sed_eval),
  all on the detections at threshold 0.5, as the DESED baseline reports them;
- ``onset-fms-200ms``, ``onset-fms-50ms``: HEAR's onset-only event F-measure (sed_eval) after HEAR's
  post-processing with the minimum duration chosen on validation (:mod:`audiobench.events.onset`).

A split without reference events has no defined value (NaN, recorded as null).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from audiobench.errors import ProtocolError
from audiobench.events import onset as onset_metrics, postprocess
from audiobench.events.predictions import EventPredictions
from audiobench.events.targets import frame_bounds
from audiobench.metrics_sed.params import (COLLAR_F1, INTERSECTION_F1, PSDS_EVAL_CTTC_SCENARIO1, PSDS_SCENARIOS,
                                           SEGMENT_F1, library_version)
from audiobench.events_hear import ONSET_COLLARS
from audiobench.sed_io import EventTable

COLUMNS = ["filename", "onset", "offset", "event_label"]
_COLLAR = {**COLLAR_F1, "evaluate_onset": True, "evaluate_offset": True, "event_matching_type": "optimal",
           "empty_system_output_handling": "zero_score"}
_SCENARIO1 = {**PSDS_SCENARIOS["PSDS1"], "cttc_threshold_passed": PSDS_EVAL_CTTC_SCENARIO1}

# name -> (which computation, how to read its result, implementation, parameters)
_Read = Callable[[dict[str, Any]], float]
METRICS: dict[str, tuple[str, _Read, str, dict[str, Any]]] = {
    "psds1-psds-eval": ("detections", lambda r: r["psds"]["PSDS1"][0], "psds_eval", _SCENARIO1),
    "psds2-psds-eval": ("detections", lambda r: r["psds"]["PSDS2"][0], "psds_eval", PSDS_SCENARIOS["PSDS2"]),
    "intersection-f1": ("detections", lambda r: r["intersection_f1"][0], "psds_eval", INTERSECTION_F1),
    "collar-f1-macro": ("detections", lambda r: r["sed_eval"]["collar"]["macro"], "sed_eval", _COLLAR),
    "collar-f1-micro": ("detections", lambda r: r["sed_eval"]["collar"]["micro"], "sed_eval", _COLLAR),
    "segment-f1-macro": ("detections", lambda r: r["sed_eval"]["segment"]["macro"], "sed_eval", SEGMENT_F1),
    "segment-f1-micro": ("detections", lambda r: r["sed_eval"]["segment"]["micro"], "sed_eval", SEGMENT_F1),
    "psds1-sed-scores-eval": ("scores", lambda r: r["psds"]["PSDS1"][0], "sed_scores_eval",
                              {**PSDS_SCENARIOS["PSDS1"], "time_decimals": 6}),
    "psds2-sed-scores-eval": ("scores", lambda r: r["psds"]["PSDS2"][0], "sed_scores_eval",
                              {**PSDS_SCENARIOS["PSDS2"], "time_decimals": 6}),
    **{name: ("onset", lambda r, name=name: r[name], "sed_eval",
              {"t_collar": collar, "evaluate_onset": True, "evaluate_offset": False, "average": "micro"})
       for name, collar in ONSET_COLLARS.items()},
}


def check_metrics(names: list[str]) -> None:
    """Refuse metric names this path cannot compute (before any work)."""
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ProtocolError(f"Event metric(s) {', '.join(unknown)} are not supported.",
                            hint=f"Event tasks support: {', '.join(METRICS)}.")


def metric_notes(names: list[str], settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """For each metric: implementation, its installed version, its parameters and the input it scores."""
    notes = {}
    for name in names:
        kind, _, implementation, parameters = METRICS[name]
        if kind == "onset":
            notes[name] = _onset_note(implementation, parameters, settings)
            continue
        threshold = ({"operating_points": list(settings["psds_eval_thresholds"])} if name.startswith("psds")
                     else {"threshold": settings["f1_threshold"]})
        notes[name] = {"implementation": implementation, "version": library_version(implementation),
                       "parameters": {**parameters, **({} if kind == "scores" else threshold)},
                       "input": "median-filtered frame scores" if kind == "scores" else "median-filtered, thresholded"
                                                                                         " detections"}
    return notes


def _onset_note(implementation: str, parameters: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    chosen = settings.get("min_duration_ms", {})
    return {"implementation": implementation, "version": library_version(implementation),
            "parameters": {**parameters, "median_filter_ms": settings["median_filter_ms"],
                           "threshold": settings.get("onset_threshold", postprocess.F1_THRESHOLD),
                           "min_duration_ms": chosen,
                           "min_duration_ms_candidates": settings.get("min_duration_ms_candidates")},
            "input": "HEAR post-processing of the raw frame scores (median filter, score > threshold, events of "
                     "at least min_duration_ms, chosen per split on validation from the candidates)"}


def _file(clip: str) -> str:
    """The table file name of a clip; metrics_sed's clip id of it (name without extension) is the clip id."""
    return f"{clip}.wav"


def _merged(events: list[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """Overlapping reference events of one class merged (the PSDS implementations refuse overlaps)."""
    merged: list[list[float]] = []
    for onset, offset, label in sorted(events, key=lambda e: (e[2], e[0], e[1])):
        if merged and merged[-1][2] == label and onset <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], offset)
        else:
            merged.append([onset, offset, label])
    return [(a, b, int(c)) for a, b, c in merged]


def _table(rows: list[tuple[str, float, float, str]], clips: list[str]) -> EventTable:
    events = pd.DataFrame(rows, columns=COLUMNS) if rows else pd.DataFrame(
        {"filename": pd.Series([], dtype=str), "onset": pd.Series([], dtype=float),
         "offset": pd.Series([], dtype=float), "event_label": pd.Series([], dtype=str)})
    events["row"] = np.arange(1, len(events) + 1)
    return EventTable(events, frozenset(clips), Path("<in memory>"))


def score_split(predictions: EventPredictions, rows: np.ndarray, names: list[str], settings: dict[str, Any],
                jobs: int = 1) -> dict[str, float]:
    """Every metric of ``names`` on the clips ``rows`` of ``predictions``."""
    from audiobench.metrics_sed.detections import score_detections
    from audiobench.metrics_sed.scores import score_tables

    classes = predictions.classes.tolist()
    files = [_file(predictions.clip_id[i]) for i in rows]
    truth_rows = [(files[k], onset, offset, classes[label]) for k, i in enumerate(rows)
                  for onset, offset, label in _merged(predictions.clip_events(int(i)))]
    if not truth_rows:
        return {name: float("nan") for name in names}
    absent = sorted(set(classes) - {label for _, _, _, label in truth_rows})
    if absent and any(METRICS[name][0] == "scores" for name in names):
        raise ProtocolError(f"PSDS (sed_scores_eval) needs reference events of every class in each test split; "
                            f"the split has none of {', '.join(absent)}.",
                            hint="Use a test set where every class occurs (the DESED validation set does), or list "
                                 "only psds_eval / F1 metrics in the card.")
    truth = _table(truth_rows, files)
    durations = pd.DataFrame({"filename": files, "duration": predictions.duration[rows].astype(float)})
    frames = postprocess.filter_frames(settings["median_filter_ms"], settings["hop_ms"])
    tables, detections = {}, {t: [] for t in (*settings["psds_eval_thresholds"], settings["f1_threshold"])}
    for k, i in enumerate(rows):
        timestamps, raw = predictions.clip_frames(int(i))
        scores = postprocess.median_filter(raw.astype(np.float64), frames)
        onsets, offsets = frame_bounds(timestamps, settings["hop_ms"], float(predictions.duration[i]))
        tables[files[k][:-len(".wav")]] = pd.DataFrame({"onset": onsets, "offset": offsets,
                                                        **{c: scores[:, j] for j, c in enumerate(classes)}})
        for threshold, found in detections.items():
            found += [(files[k], a, b, classes[c])
                      for a, b, c in postprocess.to_events(scores, threshold, onsets, offsets)]
    results: dict[str, dict[str, Any]] = {}
    kinds = {METRICS[name][0] for name in names}
    if "scores" in kinds:
        results["scores"] = score_tables(tables, truth.events, durations, jobs)
    if "detections" in kinds:
        points = {t: _table(detections[t], files) for t in settings["psds_eval_thresholds"]}
        results["detections"] = score_detections(truth, durations, points,
                                                 _table(detections[settings["f1_threshold"]], files), jobs)
    return {name: float(METRICS[name][1](results[METRICS[name][0]])) for name in names}


def score_event_predictions(predictions: EventPredictions, names: list[str], settings: dict[str, Any],
                            jobs: int = 1) -> dict[str, dict[str, float]]:
    """``{metric: {split: value}}`` in split order (what a run records and ``rescore`` recomputes)."""
    per_split = {name: {} for name in names}
    onsets = onset_metrics.onset_names(names)
    others = [name for name in names if name not in onsets]
    for split in predictions.split_names():
        rows = np.flatnonzero(predictions.split == split)
        values = score_split(predictions, rows, others, settings, jobs) if others else {}
        if onsets:
            values.update(onset_metrics.score_onset(predictions, rows, onsets, settings, split))
        for name, value in values.items():
            per_split[name][split] = value
    return per_split
