"""What a dataset loader hands to a protocol: clips with labels, folds and groups."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Clip:
    """One audio clip of a dataset."""

    clip_id: str  # stable identity inside the dataset (e.g. the original file name)
    path: Path
    label: int
    fold: int | None = None
    group: str | None = None  # e.g. recording device


@dataclass
class DatasetIndex:
    """The clips of a dataset that are present, plus what the official release expects."""

    name: str
    classes: list[str]
    clips: list[Clip]
    expected_per_fold: dict[int, int] = field(default_factory=dict)  # official clip count per fold
    missing: list[str] = field(default_factory=list)  # clip ids listed in the metadata but not on disk
    clip_seconds: float | None = None

    @property
    def expected_total(self) -> int:
        return sum(self.expected_per_fold.values()) if self.expected_per_fold else len(self.clips)

    def present_per_fold(self) -> dict[int, int]:
        """Number of present clips in each official fold."""
        counts = {fold: 0 for fold in self.expected_per_fold}
        for clip in self.clips:
            if clip.fold is not None:
                counts[clip.fold] = counts.get(clip.fold, 0) + 1
        return counts

    def complete_folds(self) -> list[int]:
        """Folds whose every clip is present."""
        present = self.present_per_fold()
        return [f for f, n in sorted(self.expected_per_fold.items()) if present.get(f, 0) == n]

    def manifest(self) -> dict[str, object]:
        """Clip count and a hash of the sorted clip list (id, label, fold) for the result record."""
        rows = sorted((c.clip_id, c.label, c.fold) for c in self.clips)
        digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
        return {"dataset": self.name, "clips": len(self.clips), "expected_clips": self.expected_total,
                "classes": len(self.classes), "clip_list_sha256": digest}
