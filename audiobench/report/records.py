"""Reading result records and their predictions files for the reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audiobench.errors import AudiobenchError
from audiobench.predictions import Predictions, load_predictions
from audiobench.results import read_record


@dataclass
class RecordFile:
    """A result record and where it lies."""

    path: Path
    record: dict[str, Any]

    @property
    def task(self) -> str:
        return self.record["task"]["name"]

    @property
    def model(self) -> str:
        return self.record["model"]["name"]

    @property
    def official(self) -> bool:
        return bool(self.record["protocol"]["official"])

    @property
    def primary_metric(self) -> str:
        return self.record["task"]["metric"]

    def score(self, metric: str | None = None) -> dict[str, Any]:
        """The metric block (mean, std, std_ddof, per_split) of ``metric`` (default: the primary one)."""
        return self.record["metrics"][metric or self.primary_metric]

    def predictions(self) -> Predictions:
        """The record's predictions file, verified against the sha256 the record names."""
        info = self.record.get("predictions")
        if not info:
            raise AudiobenchError(f"Record {self.path} has no predictions file (written before schema version 2).",
                                  hint="Re-run its command to get a record with per-clip predictions.")
        return load_predictions(self.path.with_name(info["file"]), info["sha256"])


def load_record(path: Path) -> RecordFile:
    """One record file."""
    path = Path(path)
    if not path.is_file():
        raise AudiobenchError(f"Result record {path} does not exist.", hint="Give the path of a record's .json file.")
    return RecordFile(path=path, record=read_record(path))


def load_records(directory: Path) -> list[RecordFile]:
    """Every record (``*.json``) in ``directory``, sorted by file name.

    An empty ``.json`` is a name reserved by a record being written on a file system without hard links (or
    left by a writer killed in that instant): it is skipped with a warning, never read as a record.
    """
    import warnings

    directory = Path(directory)
    if not directory.is_dir():
        raise AudiobenchError(f"Results directory {directory} does not exist.",
                              hint="Point --results at the folder `audiobench run` writes records to.")
    records = []
    for path in sorted(directory.glob("*.json")):
        if path.stat().st_size == 0:
            warnings.warn(f"Skipping {path}: empty (a record being written, or one whose writer was killed; "
                          f"delete it if no run is writing).", stacklevel=2)
            continue
        records.append(load_record(path))
    return records
