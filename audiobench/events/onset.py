"""HEAR onset F-measures (``onset-fms-200ms``, ``onset-fms-50ms``) in the events path.

As hear-eval-kit does it (:mod:`audiobench.events_hear`): the raw frame scores of a split's test clips are
median-filtered (``median_filter_ms``), thresholded at 0.5 and turned into events kept when they last at
least ``min_duration_ms``; the minimum duration is chosen per split on its validation clips from the card's
candidates (scored with the primary onset metric's collar) and recorded in the record's ``postprocessing``
block (``min_duration_ms: {split: value}``), so ``rescore`` needs only the test predictions and that block.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from audiobench.errors import ProtocolError
from audiobench.events.predictions import EventPredictions
from audiobench.events_hear import (ONSET_COLLARS, THRESHOLD, Event, ScoreTable, choose_min_duration,
                                    hear_postprocess, onset_fmeasure)

#: hear-eval-kit ``EVENT_POSTPROCESSING_GRID`` minimum durations, used when the card names none.
DEFAULT_MIN_DURATION_MS = (125.0, 250.0)
SOURCE = ("hear-eval-kit v2021.1.3 create_events_from_prediction: median filter, score > 0.5, events of at "
          "least min_duration_ms (chosen on validation), sed_eval onset-only event F-measure")


def onset_names(names: Sequence[str]) -> list[str]:
    """The HEAR onset F-measure names among ``names``."""
    return [name for name in names if name in ONSET_COLLARS]


def selection_collar(primary: str, names: Sequence[str]) -> float:
    """The onset collar (s) the minimum duration is chosen with: the primary metric's, else the first one's."""
    return ONSET_COLLARS[primary if primary in ONSET_COLLARS else onset_names(names)[0]]


def candidates(value: Any) -> list[float]:
    """The minimum-duration candidates (ms) of the option ``min_duration_ms`` (a number or a list)."""
    if value is None:
        return list(DEFAULT_MIN_DURATION_MS)
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in values):
        raise ProtocolError(f"Option min_duration_ms {value!r} is not a non-negative number or a list of them.",
                            hint="Give candidates in milliseconds, e.g. min_duration_ms: [125, 250].")
    return [float(v) for v in values]


def score_tables(predictions: EventPredictions, rows: Sequence[int]) -> dict[str, ScoreTable]:
    """Clip id -> (raw frame scores [T, C], timestamps_ms [T]) of the clips ``rows``."""
    tables = {}
    for i in rows:
        timestamps, scores = predictions.clip_frames(int(i))
        tables[str(predictions.clip_id[i])] = (scores, timestamps)
    return tables


def references(predictions: EventPredictions, rows: Sequence[int]) -> list[Event]:
    """Reference events ``(clip id, onset, offset, class name)`` of the clips ``rows``."""
    classes = predictions.classes.tolist()
    return [(str(predictions.clip_id[i]), onset, offset, classes[label]) for i in rows
            for onset, offset, label in predictions.clip_events(int(i))]


def score_onset(predictions: EventPredictions, rows: np.ndarray, names: Sequence[str], settings: dict[str, Any],
                split: str) -> dict[str, float]:
    """Every onset F-measure of ``names`` on the clips ``rows`` of split ``split`` (its recorded min duration)."""
    chosen = settings.get("min_duration_ms")
    if not isinstance(chosen, dict) or split not in chosen:
        raise ProtocolError(f"The record's postprocessing block has no min_duration_ms for split {split!r}.",
                            hint="Onset F-measures need the minimum duration chosen on validation; re-run the task.")
    tables, classes = score_tables(predictions, rows), predictions.classes.tolist()
    events = hear_postprocess(tables, classes, float(settings["median_filter_ms"]), float(chosen[split]), THRESHOLD)
    reference = references(predictions, rows)
    return {name: onset_fmeasure(reference, events, ONSET_COLLARS[name], files=tables, classes=classes)
            for name in names}


class MinDurationChooser:
    """Called with each split's validation predictions: chooses and keeps that split's minimum duration."""

    def __init__(self, options: list[float], collar_s: float, median_filter_ms: float) -> None:
        self.options, self.collar_s, self.median_filter_ms = options, collar_s, median_filter_ms
        self.chosen: dict[str, float] = {}
        self.valid_scores: dict[str, dict[str, float]] = {}

    def __call__(self, split: str, valid: EventPredictions | None) -> None:
        if valid is None and len(self.options) > 1:
            raise ProtocolError(f"Split {split!r} has no validation clips to choose min_duration_ms from "
                                f"{self.options}.",
                                hint="Give the card's splits a valid list (or folds), or a single min_duration_ms.")
        rows = list(range(len(valid.clip_id))) if valid is not None else []
        tables = score_tables(valid, rows) if valid is not None else {}
        reference = references(valid, rows) if valid is not None else []
        classes = valid.classes.tolist() if valid is not None else []
        best, scores = choose_min_duration(tables, reference, classes, self.collar_s, self.median_filter_ms,
                                           self.options)
        self.chosen[split] = float(best)
        self.valid_scores[split] = {f"{k:g}": float(v) for k, v in scores.items()}

    def settings(self) -> dict[str, Any]:
        """What the record's postprocessing block gains (``rescore`` reads ``min_duration_ms``)."""
        return {"min_duration_ms": dict(self.chosen), "min_duration_ms_candidates": list(self.options),
                "min_duration_selection": f"best validation onset F-measure (collar {self.collar_s:g} s) per split; "
                                          "ties to the larger value, a single candidate without scoring",
                "min_duration_valid_fms": dict(self.valid_scores), "onset_threshold": THRESHOLD,
                "onset_source": SOURCE}
