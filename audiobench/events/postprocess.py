"""Post-processing of frame scores: per-class median filter and thresholding into events.

Defaults follow the DESED baseline (DESED_task recipes/dcase2023_task4_baseline, protocols.md 1.4 / 4.7):
a median filter of 7 output frames of its CRNN, whose frames are 4 x 256 samples at 16 kHz = 64 ms, i.e.
448 ms -> ``median_filter_ms`` 450 (9 frames at the 50 ms hop); scipy's ``median_filter`` along time per
class with its default ``reflect`` border, as the baseline calls it; a frame is active when its score is
above the threshold (``>``, as the baseline's decoder); PSDS with psds_eval at the 50 thresholds
0.01, 0.03, ..., 0.99 (``np.arange(1 / 100, 1, 1 / 50)`` in the baseline); F1 figures at 0.5.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_MEDIAN_FILTER_MS = 450.0
PSDS_THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(1 / 100, 1, 1 / 50))  # 50 operating points
F1_THRESHOLD = 0.5


def filter_frames(median_filter_ms: float, hop_ms: float) -> int:
    """Median filter length in frames for ``median_filter_ms`` at ``hop_ms`` (at least 1 = no filtering)."""
    return max(1, int(round(median_filter_ms / hop_ms)))


def median_filter(scores: np.ndarray, frames: int) -> np.ndarray:
    """``scores`` ``[T, C]`` median-filtered along time over ``frames`` frames, each class on its own."""
    if frames <= 1:
        return np.asarray(scores)
    from scipy.ndimage import median_filter as filter_nd

    return filter_nd(np.asarray(scores), size=(frames, 1), mode="reflect")


def to_events(scores: np.ndarray, threshold: float, onsets: np.ndarray,
              offsets: np.ndarray) -> list[tuple[float, float, int]]:
    """Events ``(onset s, offset s, class)`` of the runs of frames whose score is above ``threshold``."""
    active = np.asarray(scores) > threshold
    events = []
    for label in range(active.shape[1]):
        edges = np.diff(np.concatenate([[0], active[:, label].astype(np.int8), [0]]))
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            events.append((float(onsets[start]), float(offsets[stop - 1]), label))
    return events


def settings(median_filter_ms: float, hop_ms: float) -> dict[str, Any]:
    """The post-processing block of an events record (what rescoring applies again)."""
    return {"median_filter_ms": float(median_filter_ms),
            "median_filter_frames": filter_frames(median_filter_ms, hop_ms),
            "median_filter_mode": "scipy.ndimage.median_filter per class along time, mode reflect",
            "hop_ms": float(hop_ms), "frame_span": "centre +- hop/2, clipped to [0, duration]",
            "activity": "score > threshold", "psds_eval_thresholds": list(PSDS_THRESHOLDS),
            "f1_threshold": F1_THRESHOLD,
            "sed_scores_eval_input": "median-filtered frame scores (no threshold)",
            "source": "DESED baseline (DESED_task dcase2023_task4_baseline): median filter 7 frames of 64 ms "
                      "(448 ms), 50 thresholds"}
