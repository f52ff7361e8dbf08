"""Per-clip predictions stored beside every result record, and the metrics computed from them.

``<record stem>.predictions.npz`` holds, for every test clip of every split:

===========  ==========================  ====================================================
array        shape / dtype               meaning
===========  ==========================  ====================================================
``clip_id``  ``[N]`` str                 the dataset's clip id
``split``    ``[N]`` str                 the split the clip was tested in (``fold1``, ``cv3``, ``test``)
``target``   ``[N]`` int64 | ``[N, C]``  class index (multiclass) or multi-hot int8 (multilabel)
``mask``     ``[N, C]`` bool, optional   labels known (partially labelled tasks); absent = all known
``group``    ``[N]`` str, optional       the clip's group (e.g. recording device) for per-group scores
``scores``   ``[N, C]`` float32          the score of every class
``classes``  ``[C]`` str                 class names in column order
===========  ==========================  ====================================================

A run computes its metrics with :func:`score_splits` from exactly these arrays, so ``audiobench rescore``
reproduces a record's numbers bit for bit, and other metrics or paired tests need no model run.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from audiobench.errors import AudiobenchError

SUFFIX = ".predictions.npz"
ARRAYS = ("clip_id", "split", "target", "scores", "classes")


@dataclass
class Predictions:
    """The scores of every test clip (see the module docstring for the arrays)."""

    clip_id: np.ndarray
    split: np.ndarray
    target: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    mask: np.ndarray | None = None
    group: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.clip_id = np.asarray(self.clip_id, dtype=str)
        self.split = np.asarray(self.split, dtype=str)
        self.target = np.asarray(self.target)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        self.classes = np.asarray(self.classes, dtype=str)
        n, c = len(self.clip_id), len(self.classes)
        if self.split.shape != (n,) or self.scores.shape != (n, c) or self.target.shape[0] != n:
            raise ValueError(f"predictions arrays disagree: clip_id {self.clip_id.shape}, split {self.split.shape}, "
                             f"target {self.target.shape}, scores {self.scores.shape}, classes {self.classes.shape}")
        if self.mask is not None and np.asarray(self.mask).shape != (n, c):
            raise ValueError(f"mask shape {np.asarray(self.mask).shape} is not {(n, c)}")
        if self.group is not None:
            self.group = np.asarray(self.group, dtype=str)
            if self.group.shape != (n,):
                raise ValueError(f"group shape {self.group.shape} is not {(n,)}")

    @property
    def multilabel(self) -> bool:
        return self.target.ndim == 2

    def split_names(self) -> list[str]:
        """Split names in the order they first appear."""
        return list(dict.fromkeys(self.split.tolist()))

    def predicted(self) -> np.ndarray:
        """Top-1 class index per clip (first maximum, as ``argmax``)."""
        return self.scores.argmax(axis=1)

    def subset(self, rows: np.ndarray) -> "Predictions":
        """The predictions of ``rows`` (indices or a boolean mask)."""
        return Predictions(self.clip_id[rows], self.split[rows], self.target[rows], self.scores[rows], self.classes,
                           None if self.mask is None else np.asarray(self.mask)[rows],
                           None if self.group is None else self.group[rows])

    def to_bytes(self) -> bytes:
        """The ``.npz`` file content (uncompressed, no pickles)."""
        arrays = {name: getattr(self, name) for name in ARRAYS}
        if self.mask is not None:
            arrays["mask"] = np.asarray(self.mask, dtype=bool)
        if self.group is not None:
            arrays["group"] = self.group
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def predictions_path(record_path: Path) -> Path:
    """``<record stem>.predictions.npz`` beside ``record_path``."""
    record_path = Path(record_path)
    return record_path.with_name(record_path.stem + SUFFIX)


def load_predictions(path: Path, sha256: str | None = None) -> Predictions:
    """Read a predictions file; with ``sha256`` the file must match it (it is the one the record names)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise AudiobenchError(f"Predictions file {path} cannot be read ({error.strerror or error}).",
                              hint="It is written beside its record by `audiobench run`; re-run to regenerate it.") from None
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise AudiobenchError(f"Predictions file {path} does not match the sha256 its record names.",
                              hint="The file was changed or replaced; re-run the record's command to regenerate it.")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        return Predictions(**{name: arrays[name] for name in ARRAYS}, mask=arrays.get("mask"),
                           group=arrays.get("group"))
    except (ValueError, KeyError, OSError) as error:
        raise AudiobenchError(f"Predictions file {path} is not a valid predictions file ({error}).",
                              hint="Re-run the record's command to regenerate it.") from None


Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


def score_splits(predictions: Predictions, metric: Metric) -> dict[str, float]:
    """``metric(target, predicted, scores[, mask=...])`` per split, in split order (what a run records)."""
    predicted = predictions.predicted()
    mask = None if predictions.mask is None else np.asarray(predictions.mask, dtype=bool)
    result = {}
    for name in predictions.split_names():
        rows = predictions.split == name
        extra = {} if mask is None else {"mask": mask[rows]}
        result[name] = float(metric(predictions.target[rows], predicted[rows], predictions.scores[rows], **extra))
    return result


def score_groups(predictions: Predictions, metric: Metric,
                 sets: dict[str, list[str]] | None = None) -> dict[str, dict[str, float]]:
    """Per-split scores within every group (``group=<value>``) and every named set of groups.

    Empty when the predictions carry no groups. A split without clips of a group has no value for it.
    """
    if predictions.group is None:
        return {}
    groups = np.asarray(predictions.group, dtype=str)
    selections = {f"group={value}": [value] for value in sorted(set(groups.tolist()))}
    selections.update({name: list(values) for name, values in (sets or {}).items()})
    result = {}
    for name, values in selections.items():
        rows = np.isin(groups, values)
        if rows.any():
            result[name] = score_splits(predictions.subset(np.flatnonzero(rows)), metric)
    return result
