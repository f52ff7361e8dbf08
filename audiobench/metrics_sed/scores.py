"""Scores from raw per-clip score tables with sed_scores_eval (threshold-independent PSDS, F1 at 0.5)."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

from audiobench.metrics_sed.params import COLLAR_F1, F1_THRESHOLD, INTERSECTION_F1, PSDS_SCENARIOS, SEGMENT_F1


def clip_id(filename: str) -> str:
    """sed_scores_eval's clip id: the file name without its extension (``Y..._30.000_40.000``)."""
    return filename.rsplit(".", 1)[0]


def ground_truth_dict(truth: pd.DataFrame, clips: list[str]) -> dict[str, list[tuple[float, float, str]]]:
    """``{clip id: [(onset, offset, label), ...]}`` with an empty list for clips without events."""
    events: dict[str, list[tuple[float, float, str]]] = {clip_id(c): [] for c in clips}
    for filename, onset, offset, label in truth[["filename", "onset", "offset", "event_label"]].itertuples(index=False):
        events[clip_id(filename)].append((float(onset), float(offset), label))
    return events


def score_tables(scores: dict[str, pd.DataFrame], truth: pd.DataFrame, durations: pd.DataFrame,
                 jobs: int) -> dict[str, Any]:
    """PSDS1/PSDS2, intersection-, collar- and segment-based F1 at threshold 0.5 from score tables.

    ``scores`` is keyed by clip id (durations' file names without extension).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sed_scores_eval

    clips = list(durations["filename"])
    truth_events = ground_truth_dict(truth, clips)
    lengths = {clip_id(c): float(d) for c, d in durations[["filename", "duration"]].itertuples(index=False)}
    out: dict[str, Any] = {"psds": {}}
    for name, scenario in PSDS_SCENARIOS.items():
        value, per_class, *_ = sed_scores_eval.intersection_based.psds(
            scores=scores, ground_truth=truth_events, audio_durations=lengths,
            dtc_threshold=scenario["dtc_threshold"], gtc_threshold=scenario["gtc_threshold"],
            cttc_threshold=scenario["cttc_threshold"], alpha_ct=scenario["alpha_ct"],
            alpha_st=scenario["alpha_st"], max_efpr=scenario["max_efpr"], unit_of_time=scenario["unit_of_time"],
            num_jobs=jobs)
        out["psds"][name] = (float(value), {k: float(v) for k, v in per_class.items()})
    f, *_ = sed_scores_eval.intersection_based.fscore(
        scores=scores, ground_truth=truth_events, threshold=F1_THRESHOLD,
        dtc_threshold=INTERSECTION_F1["dtc_threshold"], gtc_threshold=INTERSECTION_F1["gtc_threshold"],
        num_jobs=jobs)
    out["intersection"] = _split(f)
    f, *_ = sed_scores_eval.collar_based.fscore(
        scores=scores, ground_truth=truth_events, threshold=F1_THRESHOLD,
        onset_collar=COLLAR_F1["onset_collar_s"], offset_collar=COLLAR_F1["offset_collar_s"],
        offset_collar_rate=COLLAR_F1["offset_collar_rate"], num_jobs=jobs)
    out["collar"] = _split(f)
    f, *_ = sed_scores_eval.segment_based.fscore(
        scores=scores, ground_truth=truth_events, audio_durations=lengths, threshold=F1_THRESHOLD,
        segment_length=SEGMENT_F1["segment_length_s"], num_jobs=jobs)
    out["segment"] = _split(f)
    return out


def _split(values: dict[str, float]) -> dict[str, Any]:
    return {"macro": float(values["macro_average"]), "micro": float(values["micro_average"]),
            "per_class": {k: float(v) for k, v in values.items() if not k.endswith("_average")}}
