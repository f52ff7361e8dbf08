"""Scores from thresholded detections: PSDS with psds_eval, F1 figures with psds_eval and sed_eval.

psds_eval evaluates one operating point at a time (``add_operating_point``, ~0.1 s each with pandas
merges). The operating points are independent, so they are evaluated in worker processes, each
holding its own ``PSDSEval`` with the same ground truth; the per-point rows (TPR, FPR, CT rates) are
then joined in threshold order into one ``PSDSEval`` whose ``psds()`` gives the score. This is the
library's own computation, only spread over processes: results are identical to adding the
points one by one (tests/test_score_sed.py checks it).
"""

from __future__ import annotations

import multiprocessing
import os
import warnings
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any

import pandas as pd

from audiobench.sed_io import EventTable
from audiobench.metrics_sed.params import (COLLAR_F1, INTERSECTION_F1, PSDS_EVAL_CTTC_SCENARIO1, PSDS_SCENARIOS,
                                           SEGMENT_F1)

_SHARED: dict[str, pd.DataFrame] = {}
COLUMNS = ["filename", "onset", "offset", "event_label"]


def default_jobs() -> int:
    """Worker processes: the CPUs this process may use, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def _psds_eval_thresholds(scenario: dict[str, Any]) -> tuple[float, float, float]:
    cttc = scenario["cttc_threshold"]
    return scenario["dtc_threshold"], scenario["gtc_threshold"], PSDS_EVAL_CTTC_SCENARIO1 if cttc is None else cttc


def _new_psds_eval(thresholds: tuple[float, float, float], truth: pd.DataFrame, durations: pd.DataFrame) -> Any:
    from psds_eval import PSDSEval

    dtc, gtc, cttc = thresholds
    return PSDSEval(dtc_threshold=dtc, gtc_threshold=gtc, cttc_threshold=cttc, ground_truth=truth[COLUMNS],
                    metadata=durations, duration_unit="hour")


def _init_worker(truth: pd.DataFrame, durations: pd.DataFrame) -> None:
    _SHARED["truth"], _SHARED["durations"] = truth, durations


def _operating_point_rows(thresholds: tuple[float, float, float],
                          chunk: list[tuple[float, pd.DataFrame]]) -> pd.DataFrame:
    """Worker: evaluate some operating points with a fresh PSDSEval, return its operating-point table."""
    evaluator = _new_psds_eval(thresholds, _SHARED["truth"], _SHARED["durations"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # repeated operating points are counted and reported once, in _psds
        warnings.filterwarnings("ignore", message="A similar operating point exists")
        for threshold, detections in chunk:
            evaluator.add_operating_point(detections[COLUMNS], info={"threshold": threshold})
    return evaluator.operating_points


def _intersection_f1_worker(detections: pd.DataFrame) -> tuple[float, dict[str, float]]:
    evaluator = _new_psds_eval(tuple(INTERSECTION_F1.values()), _SHARED["truth"], _SHARED["durations"])
    return intersection_f1(evaluator, detections)


def intersection_f1(evaluator: Any, detections: pd.DataFrame) -> tuple[float, dict[str, float]]:
    """psds_eval macro F1 of one detection table (DESED baseline: 0 when there are no detections)."""
    if detections.empty:
        return 0.0, {}
    value, per_class = evaluator.compute_macro_f_score(detections[COLUMNS])
    return (0.0 if pd.isna(value) else float(value)), {k: float(v) for k, v in per_class.items()}


def _chunks(items: list[Any], parts: int) -> list[list[Any]]:
    size = -(-len(items) // parts)
    return [items[i:i + size] for i in range(0, len(items), size)]


def _pool(jobs: int, truth: pd.DataFrame, durations: pd.DataFrame) -> Executor:
    _init_worker(truth, durations)  # also used when jobs == 1 (in-process executor below)
    if jobs <= 1:
        return _InProcess()
    context = multiprocessing.get_context("fork") if "fork" in multiprocessing.get_all_start_methods() else None
    return ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                               initargs=(truth, durations))


class _InProcess(Executor):
    """An executor that runs each call at once (jobs = 1: no processes)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def score_detections(truth: EventTable, durations: pd.DataFrame, operating_points: dict[float, EventTable],
                     f1_detections: EventTable | None, jobs: int) -> dict[str, Any]:
    """PSDS1/PSDS2 (psds_eval) over all operating points, and the F1 figures of ``f1_detections``.

    Returns ``{"psds": {name: (value, operating points used)}, "intersection_f1": (macro, per class),
    "sed_eval": {...}}``; the last two are None without ``f1_detections``.
    """
    points = [(threshold, table.events[COLUMNS]) for threshold, table in sorted(operating_points.items())]
    parts = max(1, min(jobs, len(points)))
    events = truth.events[COLUMNS]
    with _pool(jobs, events, durations) as pool:
        futures = {name: [pool.submit(_operating_point_rows, _psds_eval_thresholds(scenario), chunk)
                          for chunk in _chunks(points, parts)] for name, scenario in PSDS_SCENARIOS.items()}
        f1_future = (pool.submit(_intersection_f1_worker, f1_detections.events[COLUMNS])
                     if f1_detections is not None else None)
        collar_segment = sed_eval_f1(truth, f1_detections.events) if f1_detections is not None else None
        psds = {name: _psds(name, [f.result() for f in parts_], events, durations) for name, parts_ in futures.items()}
        inter = f1_future.result() if f1_future is not None else None
    return {"psds": psds, "intersection_f1": inter, "sed_eval": collar_segment}


def _psds(name: str, tables: list[pd.DataFrame], truth: pd.DataFrame, durations: pd.DataFrame) -> tuple[float, int]:
    scenario = PSDS_SCENARIOS[name]
    evaluator = _new_psds_eval(_psds_eval_thresholds(scenario), truth, durations)
    rows = pd.concat(tables, ignore_index=True)
    repeated = rows["id"].duplicated()  # identical tables: psds_eval keeps the first one only
    if repeated.any():
        warnings.warn(f"{int(repeated.sum())} operating point(s) repeat an earlier one's detections exactly; "
                      "psds_eval counts each distinct table once", stacklevel=2)
    evaluator.operating_points = rows[~repeated].reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pandas fillna(method=...) inside psds_eval
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy int(array) inside psds_eval._auc
        result = evaluator.psds(alpha_ct=scenario["alpha_ct"], alpha_st=scenario["alpha_st"],
                                max_efpr=scenario["max_efpr"])
    return float(result.value), int((~repeated).sum())


def sed_eval_f1(truth: EventTable, detections: pd.DataFrame) -> dict[str, Any]:
    """Collar-based (event) and segment-based F1 with sed_eval, as the DESED baseline computes them.

    Evaluated clips: those the ground-truth file lists (with or without events); classes: the ground
    truth's. Event-based: 200 ms onset collar, offset collar max(200 ms, 20 % of the event length),
    empty system output scored 0; segment-based: 1 s segments.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dcase_util imports pkg_resources
        import sed_eval

    classes = sorted(truth.events["event_label"].unique())
    event = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=classes, t_collar=COLLAR_F1["onset_collar_s"],
        percentage_of_length=COLLAR_F1["offset_collar_rate"], empty_system_output_handling="zero_score")
    segment = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=classes,
                                                       time_resolution=SEGMENT_F1["segment_length_s"])
    reference = {clip: group[COLUMNS].to_dict("records")
                 for clip, group in truth.events.groupby("filename", sort=False)}
    estimated = {clip: group[COLUMNS].to_dict("records") for clip, group in detections.groupby("filename", sort=False)}
    for clip in sorted(truth.clips):
        ref = reference.get(clip) or [{"filename": clip}]
        est = estimated.get(clip, [])
        event.evaluate(reference_event_list=ref, estimated_event_list=est)
        segment.evaluate(reference_event_list=ref, estimated_event_list=est)
    out = {}
    for kind, metrics in (("collar", event), ("segment", segment)):
        results = metrics.results()
        out[kind] = {"macro": results["class_wise_average"]["f_measure"]["f_measure"],
                     "micro": results["overall"]["f_measure"]["f_measure"],
                     "per_class": {c: results["class_wise"][c]["f_measure"]["f_measure"] for c in classes}}
    return out
