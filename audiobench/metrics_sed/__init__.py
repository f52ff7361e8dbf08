"""Sound event detection scores of DCASE task 4 (DESED): PSDS1, PSDS2 and the F1 figures.

:func:`score_sed` reads and validates the inputs (:mod:`audiobench.sed_io`), then scores either
thresholded detections at operating points (psds_eval + sed_eval, :mod:`.detections`) or raw
per-clip score tables (sed_scores_eval, :mod:`.scores`). Every metric row names the library,
its version and all parameters.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from audiobench.errors import AudiobenchError
from audiobench.metrics_sed.params import (COLLAR_F1, F1_THRESHOLD, INTERSECTION_F1, PSDS_EVAL_CTTC_SCENARIO1,
                                           PSDS_SCENARIOS, SEGMENT_F1, metric)
from audiobench.sed_io import FloatParsing, check_no_overlaps, read_durations, read_events, read_ground_truth

__all__ = ["score_sed"]


def score_sed(ground_truth: Path, durations: Path, *, detections: Path | None = None, scores: Path | None = None,
              f1_detections: Path | None = None, jobs: int | None = None,
              float_parsing: FloatParsing = "exact") -> dict[str, Any]:
    """Score one SED system on one evaluation set; see docs/reports.md "score-sed" for the keys."""
    from audiobench.metrics_sed.detections import default_jobs

    if (detections is None) == (scores is None):
        raise AudiobenchError("Give exactly one of --detections and --scores.",
                              hint="--detections DIR: thresholded detections; --scores DIR: per-clip score tables.")
    if scores is not None and f1_detections is not None:
        raise AudiobenchError("--f1-detections goes with --detections only.",
                              hint="With --scores the F1 figures come from the scores at threshold 0.5.")
    jobs = jobs or default_jobs()
    started = time.perf_counter()
    lengths = read_durations(durations, float_parsing)
    truth = read_ground_truth(ground_truth, lengths, float_parsing)
    classes = sorted(truth.events["event_label"].unique())
    result: dict[str, Any] = {
        "mode": "detections" if detections is not None else "scores",
        "ground_truth": str(ground_truth), "durations": str(durations),
        "input": str(detections if detections is not None else scores),
        "clips": len(lengths), "ground_truth_clips": len(truth.clips), "events": len(truth.events),
        "classes": classes, "float_parsing": float_parsing, "jobs": jobs,
    }
    timings: dict[str, float] = {}
    if detections is not None:
        rows, missing = _from_detections(result, truth, lengths, Path(detections), f1_detections, jobs,
                                         float_parsing, timings)
    else:
        rows, missing = _from_scores(result, truth, lengths, Path(scores), classes, jobs, timings)
    result["metrics"], result["missing"] = rows, missing
    timings["total_s"] = time.perf_counter() - started
    result["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    return result


def _from_detections(result: dict[str, Any], truth: Any, lengths: Any, directory: Path, f1_path: Path | None,
                     jobs: int, float_parsing: FloatParsing, timings: dict[str, float]) -> tuple[list, list]:
    from audiobench.metrics_sed.detections import score_detections
    from audiobench.metrics_sed.inputs import read_operating_points

    started = time.perf_counter()
    labels, clips = set(truth.events["event_label"]), set(lengths["filename"])
    points = read_operating_points(directory, labels, clips, float_parsing)
    if f1_path is None and F1_THRESHOLD in points:
        f1_path = points[F1_THRESHOLD].path
    f1_table = None
    if f1_path is not None:
        f1_table = read_events(f1_path, labels=labels, clips=clips, float_parsing=float_parsing)
        check_no_overlaps(f1_table.events, f1_path)
    timings["read_s"] = time.perf_counter() - started
    started = time.perf_counter()
    scored = score_detections(truth, lengths, points, f1_table, jobs)
    timings["score_s"] = time.perf_counter() - started
    result["operating_points"] = len(points)
    result["thresholds"] = sorted(points)
    result["f1_detections"] = None if f1_path is None else str(f1_path)
    rows = []
    for name, (value, used) in scored["psds"].items():
        scenario = dict(PSDS_SCENARIOS[name])
        if scenario["cttc_threshold"] is None:
            scenario["cttc_threshold_passed"] = PSDS_EVAL_CTTC_SCENARIO1
        scenario.update(operating_points=used, interpolation="step (en_interp False)")
        rows.append(metric(name, value, "psds_eval", scenario))
    missing = []
    if f1_table is None:
        reason = (f"no detections at threshold {F1_THRESHOLD}: give --f1-detections FILE or put "
                  f"predictions_th_{F1_THRESHOLD:.2f}.tsv in {directory} (the nearest operating point is not used)")
        missing = [{"name": n, "reason": reason} for n in _F1_NAMES]
        return rows, missing
    inter, per_class = scored["intersection_f1"]
    rows.append(metric("intersection_F1_macro", inter, "psds_eval", {"threshold": F1_THRESHOLD, **INTERSECTION_F1},
                       per_class=per_class))
    events = scored["sed_eval"]
    collar = {"threshold": F1_THRESHOLD, **COLLAR_F1, "evaluate_onset": True, "evaluate_offset": True,
              "event_matching_type": "optimal", "empty_system_output_handling": "zero_score"}
    segment = {"threshold": F1_THRESHOLD, **SEGMENT_F1}
    for kind, params in (("collar", collar), ("segment", segment)):
        for average in ("macro", "micro"):
            extra = {"per_class": events[kind]["per_class"]} if average == "macro" else {}
            rows.append(metric(f"{kind}_F1_{average}", events[kind][average], "sed_eval", params, **extra))
    return rows, missing


_F1_NAMES = ("intersection_F1_macro", "collar_F1_macro", "collar_F1_micro", "segment_F1_macro", "segment_F1_micro")


def _from_scores(result: dict[str, Any], truth: Any, lengths: Any, directory: Path, classes: list[str], jobs: int,
                 timings: dict[str, float]) -> tuple[list, list]:
    from audiobench.metrics_sed.inputs import read_score_tables
    from audiobench.metrics_sed.scores import clip_id, score_tables

    started = time.perf_counter()
    ids = [clip_id(name) for name in lengths["filename"]]
    tables = read_score_tables(directory, classes, ids)
    timings["read_s"] = time.perf_counter() - started
    started = time.perf_counter()
    try:
        scored = score_tables(tables, truth.events, lengths, jobs)
    except (ValueError, AssertionError) as error:
        raise AudiobenchError(f"{directory}: sed_scores_eval rejected the score tables ({error}).",
                              hint="Check that every table is onset, offset, one column per class.") from error
    timings["score_s"] = time.perf_counter() - started
    rows = []
    for name, (value, per_class) in scored["psds"].items():
        rows.append(metric(name, value, "sed_scores_eval", {**PSDS_SCENARIOS[name], "time_decimals": 6},
                           per_class_psds=per_class))
    inter = {"threshold": F1_THRESHOLD, "dtc_threshold": INTERSECTION_F1["dtc_threshold"],
             "gtc_threshold": INTERSECTION_F1["gtc_threshold"], "cttc_threshold": None, "time_decimals": 6}
    rows.append(metric("intersection_F1_macro", scored["intersection"]["macro"], "sed_scores_eval", inter,
                       per_class=scored["intersection"]["per_class"]))
    for kind, params in (("collar", {"threshold": F1_THRESHOLD, **COLLAR_F1, "time_decimals": 6}),
                         ("segment", {"threshold": F1_THRESHOLD, **SEGMENT_F1, "time_decimals": 6})):
        for average in ("macro", "micro"):
            extra = {"per_class": scored[kind]["per_class"]} if average == "macro" else {}
            rows.append(metric(f"{kind}_F1_{average}", scored[kind][average], "sed_scores_eval", params, **extra))
    return rows, []
