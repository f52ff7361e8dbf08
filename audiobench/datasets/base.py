"""What a dataset loader hands to a protocol: clips with labels, folds and groups."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from audiobench.errors import DatasetError


@dataclass(frozen=True)
class Clip:
    """One audio clip of a dataset.

    ``label`` is a class index (single-label tasks) or a tuple of class indices (multi-label tasks: the
    positive classes; for event tasks, the classes that occur in the clip). ``events`` holds strong labels
    (onset and offset in seconds, class index) for sound event detection. ``mask``, for partially labelled tasks (OpenMIC), says per class whether the label is
    known. A clip belongs to an official ``fold`` or to a named ``split`` (``train``/``valid``/``test``);
    ``group`` (e.g. the recording device) is used for per-group scores.
    """

    clip_id: str  # stable identity inside the dataset (e.g. the original file name)
    path: Path
    label: int | tuple[int, ...]
    fold: int | None = None
    group: str | None = None  # e.g. recording device
    split: str | None = None
    mask: tuple[bool, ...] | None = None
    duration: float | None = None
    events: tuple[tuple[float, float, int], ...] | None = None  # strong labels: (onset s, offset s, class index)


@dataclass(frozen=True)
class OfficialList:
    """The clip list an official protocol is defined on, identified without copying it.

    ``sha256`` is :func:`list_sha256` of the official (clip id, label, fold or split) rows; a metadata file
    whose rows hash differently is not the official list, whatever its size. Where no hash could be pinned
    (the official metadata was not available to compute it), ``sha256`` is None and only the clip count is
    checked; ``per_fold`` may then be empty.
    """

    total: int
    per_fold: dict[int, int]
    sha256: str | None  # None: no hash of the official list could be pinned; then only the counts are checked
    source: str


def list_sha256(rows: Iterable[tuple[str, object, object]]) -> str:
    """sha256 of the sorted (clip id, label, fold or split) rows: the identity of a clip list."""
    canonical = sorted([clip_id, list(label) if isinstance(label, tuple) else label, fold]
                       for clip_id, label, fold in rows)
    return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()


def check_unique(entries: Iterable[tuple[str, str, int | None, str]], source: Path | str) -> None:
    """Refuse a listing that names a clip twice (test clips would leak into training).

    ``entries`` are (clip id, where it is listed, fold, identity of its audio) — the audio identity is
    e.g. the file stem, so ``a.wav`` and ``a.flac`` listed separately count as the same clip.
    """
    first: dict[str, tuple[str, int | None]] = {}
    for clip_id, where, fold, audio in entries:
        if audio in first:
            other, other_fold = first[audio]
            folds = f" (fold {other_fold} and fold {fold}: one clip in two folds)" if other_fold != fold else ""
            raise DatasetError(f"{source}: {other} and {where} list the same clip {clip_id!r}{folds}.",
                               hint="Each clip may be listed once; remove the duplicate row or restore the official "
                                    "metadata.")
        first[audio] = (where, fold)


@dataclass(frozen=True)
class Coverage:
    """How the clips of a run relate to the official list: the official-data rule."""

    official: bool
    present: int
    expected: int
    missing: list[str]
    reasons: list[str]

    def summary(self) -> str:
        """``N of M clips`` plus why the data is not official (empty reasons: official)."""
        text = f"{self.present} of {self.expected} clips"
        return text if self.official else f"{text}; not the official data: {'; '.join(self.reasons)}"


@dataclass
class DatasetIndex:
    """The clips of a dataset that are present, plus what the official release expects.

    ``listed_sha256`` identifies the rows of the metadata actually read (present or not);
    ``official_list`` the official release's rows, when the dataset defines them.
    """

    name: str
    classes: list[str]
    clips: list[Clip]
    expected_per_fold: dict[int, int] = field(default_factory=dict)  # clips per fold listed in the metadata
    missing: list[str] = field(default_factory=list)  # clip ids listed in the metadata but not on disk
    clip_seconds: float | None = None
    official_list: OfficialList | None = None
    listed_sha256: str | None = None

    @property
    def multilabel(self) -> bool:
        """Whether clips carry sets of classes (multi-hot targets) instead of one class each."""
        return any(isinstance(clip.label, tuple) for clip in self.clips)

    def targets(self) -> np.ndarray:
        """Class indices ``[N]`` (int64), or multi-hot ``[N, C]`` (int8) for multi-label datasets."""
        if not self.multilabel:
            return np.array([clip.label for clip in self.clips], dtype=np.int64)
        hot = np.zeros((len(self.clips), len(self.classes)), dtype=np.int8)
        for row, clip in enumerate(self.clips):
            hot[row, list(clip.label)] = 1
        return hot

    def masks(self) -> np.ndarray | None:
        """``[N, C]`` bool: which labels are known (None when every label is known)."""
        if not any(clip.mask is not None for clip in self.clips):
            return None
        known = np.ones((len(self.clips), len(self.classes)), dtype=bool)
        for row, clip in enumerate(self.clips):
            if clip.mask is not None:
                known[row] = clip.mask
        return known

    def groups(self) -> np.ndarray | None:
        """``[N]`` group of every clip (e.g. recording device), or None when the dataset has no groups."""
        if all(clip.group is None for clip in self.clips):
            return None
        return np.array([clip.group or "" for clip in self.clips], dtype=str)

    @property
    def expected_total(self) -> int:
        """Clips of the complete official release (of the metadata when no official list is known)."""
        if self.official_list is not None:
            return self.official_list.total
        return sum(self.expected_per_fold.values()) if self.expected_per_fold else len(self.clips)

    def present_per_fold(self) -> dict[int, int]:
        """Number of present clips in each official fold."""
        counts = {fold: 0 for fold in self.expected_per_fold}
        for clip in self.clips:
            if clip.fold is not None:
                counts[clip.fold] = counts.get(clip.fold, 0) + 1
        return counts

    def complete_folds(self) -> list[int]:
        """Folds whose every listed clip is present."""
        present = self.present_per_fold()
        return [f for f, n in sorted(self.expected_per_fold.items()) if present.get(f, 0) == n]

    def coverage(self) -> Coverage:
        """The official-data rule: official only when every clip of the official list is present, once.

        Duplicates are refused when the index is built (:func:`check_unique`); here the metadata must be
        the official list and no listed clip may be missing.
        """
        reasons = []
        official = self.official_list
        listed = sum(self.expected_per_fold.values()) if self.expected_per_fold else len(self.clips) + len(self.missing)
        if official is None:
            reasons.append(f"{self.name} defines no official clip list")
        elif official.sha256 is None and listed != official.total:
            reasons.append(f"the metadata lists {listed} clips, the official list has {official.total} "
                           f"({official.source})")
        elif official.sha256 is not None and self.listed_sha256 != official.sha256:
            per_fold = ", ".join(f"fold {f}: {self.expected_per_fold.get(f, 0)}/{n}"
                                 for f, n in sorted(official.per_fold.items()))
            reasons.append(f"the metadata lists {listed} clips and is not the official list of {official.total} "
                           f"({official.source}; {per_fold})")
        if self.missing:
            reasons.append(f"{len(self.missing)} listed clip(s) have no audio file")
        return Coverage(official=not reasons, present=len(self.clips), expected=self.expected_total,
                        missing=list(self.missing), reasons=reasons)

    def manifest(self, show_missing: int = 50) -> dict[str, object]:
        """Clip counts, coverage and a hash of the sorted clip list (id, label, fold) for the result record."""
        coverage = self.coverage()
        return {"dataset": self.name, "clips": len(self.clips), "expected_clips": self.expected_total,
                "classes": len(self.classes),
                "clip_list_sha256": list_sha256((c.clip_id, c.label, c.fold if c.split is None else c.split)
                                                for c in self.clips),
                "official_data": coverage.official, "coverage": coverage.summary(),
                "metadata_sha256": self.listed_sha256,
                "official_list_sha256": self.official_list.sha256 if self.official_list else None,
                "missing_count": len(coverage.missing), "missing": coverage.missing[:show_missing]}
