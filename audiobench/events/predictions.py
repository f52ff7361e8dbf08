"""The events predictions file: raw frame scores of every test clip and its reference events.

``<record stem>.predictions.npz`` of an events record (uncompressed ``.npz``, no pickles):

=================  ===============  ================================================================
array              shape / dtype    meaning
=================  ===============  ================================================================
``clip_id``        ``[N]`` str      the dataset's clip id
``split``          ``[N]`` str      the split the clip was tested in
``duration``       ``[N]`` float64  clip duration in seconds (scoring covers ``[0, duration]``)
``classes``        ``[C]`` str      class names in column order
``frame_offsets``  ``[N+1]`` int64  clip ``i``'s frames are rows ``frame_offsets[i]:frame_offsets[i+1]``
``timestamps_ms``  ``[F]`` float64  centre time of each frame
``scores``         ``[F, C]`` f32   raw frame scores (sigmoid outputs, before post-processing)
``events_clip``    ``[E]`` int64    reference events: index into ``clip_id``
``events_onset``   ``[E]`` float64  onset in seconds
``events_offset``  ``[E]`` float64  offset in seconds
``events_label``   ``[E]`` int64    class index
=================  ===============  ================================================================

The record's ``postprocessing`` block says how scores become detections; ``rescore`` recomputes every
metric from this file and that block.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiobench.errors import AudiobenchError
from audiobench.predictions import sha256_bytes

ARRAYS = ("clip_id", "split", "duration", "classes", "frame_offsets", "timestamps_ms", "scores", "events_clip",
          "events_onset", "events_offset", "events_label")


@dataclass
class EventPredictions:
    """Frame scores and reference events of every test clip (see the module docstring)."""

    clip_id: np.ndarray
    split: np.ndarray
    duration: np.ndarray
    classes: np.ndarray
    frame_offsets: np.ndarray
    timestamps_ms: np.ndarray
    scores: np.ndarray
    events_clip: np.ndarray
    events_onset: np.ndarray
    events_offset: np.ndarray
    events_label: np.ndarray

    def __post_init__(self) -> None:
        for name, dtype in (("clip_id", str), ("split", str), ("classes", str), ("duration", np.float64),
                            ("frame_offsets", np.int64), ("timestamps_ms", np.float64), ("scores", np.float32),
                            ("events_clip", np.int64), ("events_onset", np.float64), ("events_offset", np.float64),
                            ("events_label", np.int64)):
            setattr(self, name, np.asarray(getattr(self, name), dtype=dtype))
        n, c, f, e = len(self.clip_id), len(self.classes), len(self.timestamps_ms), len(self.events_clip)
        problems = [name for name, shape in (("split", (n,)), ("duration", (n,)), ("frame_offsets", (n + 1,)),
                                             ("scores", (f, c)), ("events_onset", (e,)), ("events_offset", (e,)),
                                             ("events_label", (e,)))
                    if getattr(self, name).shape != shape]
        if problems or (n and (self.frame_offsets[0] != 0 or self.frame_offsets[-1] != f
                               or (np.diff(self.frame_offsets) < 1).any())):
            raise ValueError(f"events predictions arrays disagree ({', '.join(problems) or 'frame_offsets'}): "
                             f"{n} clips, {c} classes, {f} frames, {e} events")
        if e and (self.events_clip.min() < 0 or self.events_clip.max() >= n or self.events_label.min() < 0
                  or self.events_label.max() >= c):
            raise ValueError("events predictions: an event names a clip or class that does not exist")

    @classmethod
    def from_clips(cls, clip_id: list[str], split: list[str], duration: list[float], classes: list[str],
                   timestamps: list[np.ndarray], scores: list[np.ndarray],
                   events: list[tuple[tuple[float, float, int], ...]]) -> "EventPredictions":
        """Assemble the arrays from per-clip frame timestamps, scores ``[T_i, C]`` and reference events."""
        lengths = [len(t) for t in timestamps]
        rows = [(i, onset, offset, label) for i, clip_events in enumerate(events)
                for onset, offset, label in clip_events]
        columns = list(zip(*rows)) if rows else [[], [], [], []]
        return cls(clip_id=clip_id, split=split, duration=duration, classes=classes,
                   frame_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   timestamps_ms=np.concatenate(timestamps) if timestamps else np.zeros(0),
                   scores=np.concatenate(scores) if scores else np.zeros((0, len(classes)), np.float32),
                   events_clip=columns[0], events_onset=columns[1], events_offset=columns[2], events_label=columns[3])

    def split_names(self) -> list[str]:
        """Split names in the order they first appear."""
        return list(dict.fromkeys(self.split.tolist()))

    def clip_frames(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(timestamps_ms [T], scores [T, C])`` of clip ``i``."""
        rows = slice(int(self.frame_offsets[i]), int(self.frame_offsets[i + 1]))
        return self.timestamps_ms[rows], self.scores[rows]

    def clip_events(self, i: int) -> list[tuple[float, float, int]]:
        """Reference events ``(onset, offset, class)`` of clip ``i``."""
        rows = np.flatnonzero(self.events_clip == i)
        return [(float(self.events_onset[r]), float(self.events_offset[r]), int(self.events_label[r])) for r in rows]

    def to_bytes(self) -> bytes:
        """The ``.npz`` file content (uncompressed, no pickles)."""
        buffer = io.BytesIO()
        np.savez(buffer, **{name: getattr(self, name) for name in ARRAYS})
        return buffer.getvalue()


def load_event_predictions(path: Path, sha256: str | None = None) -> EventPredictions:
    """Read an events predictions file; with ``sha256`` it must be the file its record names."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AudiobenchError(f"Predictions file {path} cannot be read ({error.strerror or error}).",
                              hint="It is written beside its record by `audiobench run`; re-run to "
                                   "regenerate it.") from None
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise AudiobenchError(f"Predictions file {path} does not match the sha256 its record names.",
                              hint="The file was changed or replaced; re-run the record's command to regenerate it.")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return EventPredictions(**{name: npz[name] for name in ARRAYS})
    except (ValueError, KeyError, OSError) as error:
        raise AudiobenchError(f"Predictions file {path} is not a valid events predictions file ({error}).",
                              hint="Re-run the record's command to regenerate it.") from None
