"""Frame targets from strong labels, and the time span each frame stands for."""

from __future__ import annotations

from typing import Iterable

import numpy as np


def frame_targets(events: Iterable[tuple[float, float, int]], timestamps_ms: np.ndarray,
                  num_classes: int) -> np.ndarray:
    """``[T, C]`` float32: 1 where the frame's centre lies within an event of the class, ``[onset, offset)``."""
    centres = np.asarray(timestamps_ms, dtype=np.float64) / 1000.0
    targets = np.zeros((len(centres), num_classes), dtype=np.float32)
    for onset, offset, label in events:
        targets[(centres >= onset) & (centres < offset), int(label)] = 1.0
    return targets


def frames_within(timestamps_ms: np.ndarray, duration_s: float) -> int:
    """How many leading frames have their centre inside the clip (at least one): the frames that are scored.

    Frames past the clip's duration see only padding (clips shorter than the card's ``clip_seconds``).
    """
    return max(1, int(np.count_nonzero(np.asarray(timestamps_ms) < duration_s * 1000.0)))


def frame_bounds(timestamps_ms: np.ndarray, hop_ms: float, duration_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Onset and offset in seconds of each frame: half a hop either side of its centre, clipped to the clip.

    Consecutive frames touch (one's offset is the next one's onset), as sed_scores_eval's score tables need.
    """
    centres = np.asarray(timestamps_ms, dtype=np.float64)
    onsets = np.maximum(centres - hop_ms / 2.0, 0.0) / 1000.0
    offsets = np.minimum((centres + hop_ms / 2.0) / 1000.0, duration_s)
    offsets[:-1] = onsets[1:]
    return onsets, offsets
