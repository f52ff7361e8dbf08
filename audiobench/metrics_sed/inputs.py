"""Directories of SED system outputs: detections at operating points, and per-clip score tables."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from audiobench.errors import AudiobenchError
from audiobench.sed_io import EventTable, FloatParsing, check_no_overlaps, read_events, read_table

THRESHOLD_NAME = re.compile(r"_th_?(\d+(?:\.\d+)?)\.(tsv|csv)$")


def threshold_of(path: Path) -> float | None:
    """The decision threshold in an operating-point file name (``predictions_th_0.51.tsv`` -> 0.51)."""
    match = THRESHOLD_NAME.search(path.name)
    return float(match.group(1)) if match else None


def read_operating_points(directory: Path, labels: set[str], clips: set[str],
                          float_parsing: FloatParsing = "exact") -> dict[float, EventTable]:
    """Every ``*_th_<threshold>.tsv`` of ``directory``, by threshold (ascending).

    A file with a header and no rows is a valid operating point (a threshold above every score
    detects nothing: TPR 0, FPR 0); a file without a header is an error.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise AudiobenchError(f"{directory}: not a directory.", hint="--detections takes the folder of "
                              "predictions_th_<threshold>.tsv files.")
    found = {}
    for path in sorted(directory.iterdir()):
        threshold = threshold_of(path)
        if threshold is None:
            continue
        if threshold in found:
            raise AudiobenchError(f"{path}: a second file for threshold {threshold} ({found[threshold].name}).",
                                  hint="Keep one file per operating point.")
        found[threshold] = path
    if not found:
        raise AudiobenchError(f"{directory}: no operating-point files (predictions_th_<threshold>.tsv).",
                              hint="Write one detection table per decision threshold, e.g. predictions_th_0.50.tsv.")
    tables = {}
    for threshold in sorted(found):
        events = read_events(found[threshold], labels=labels, clips=clips, float_parsing=float_parsing)
        check_no_overlaps(events.events, found[threshold])
        tables[threshold] = events
    return tables


def read_score_tables(directory: Path, classes: list[str], clips: list[str]) -> dict[str, pd.DataFrame]:
    """Per-clip score tables in the sed_scores_eval format, keyed by clip id (file name without .tsv).

    Each table: ``onset offset <class> ...``, one row per frame, frames contiguous. The class columns
    must be exactly the ground truth's classes, and there must be one table per clip of ``clips``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise AudiobenchError(f"{directory}: not a directory.", hint="--scores takes a folder of <clip>.tsv tables.")
    paths = {path.name[:-len(".tsv")]: path for path in sorted(directory.glob("*.tsv"))}
    missing = sorted(set(clips) - set(paths))
    if missing:
        raise AudiobenchError(f"{directory}: no score table for clip {missing[0]!r} "
                              f"({len(missing)} of {len(clips)} clip(s) missing).",
                              hint="Write <clip id>.tsv for every clip of the durations file.")
    extra = sorted(set(paths) - set(clips))
    if extra:
        raise AudiobenchError(f"{paths[extra[0]]}: clip {extra[0]!r} is not in the durations file "
                              f"({len(extra)} such table(s)).", hint="Score exactly the clips of the evaluation set.")
    return {clip: _read_score_table(paths[clip], classes) for clip in sorted(clips)}


def _read_score_table(path: Path, classes: list[str]) -> pd.DataFrame:
    frame = read_table(path, ("onset", "offset"), text_columns=())
    names = [c for c in frame.columns if c not in ("onset", "offset")]
    unknown = sorted(set(names) - set(classes))
    if unknown:
        raise AudiobenchError(f"{path}: unknown class column(s) {', '.join(unknown)}.",
                              hint=f"The ground truth's classes are: {', '.join(classes)}.")
    absent = sorted(set(classes) - set(names))
    if absent:
        raise AudiobenchError(f"{path}: no score column for class(es) {', '.join(absent)}.",
                              hint="Give one score column per class of the ground truth.")
    frame = frame[["onset", "offset", *classes]]
    values = frame.apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise AudiobenchError(f"{path}, row {row + 1}: a value is not a number.", hint="Scores and times are numbers.")
    if values.empty:
        raise AudiobenchError(f"{path}: no frames.", hint="A score table needs at least one row.")
    onset, offset = values["onset"].to_numpy(), values["offset"].to_numpy()
    after = onset >= offset
    if after.any():
        row = int(np.flatnonzero(after)[0])
        raise AudiobenchError(f"{path}, row {row + 1}: onset {onset[row]} is not before offset {offset[row]}.",
                              hint="Rows are frames: onset < offset, in time order.")
    gaps = onset[1:] != offset[:-1]
    if gaps.any():
        row = int(np.flatnonzero(gaps)[0]) + 2
        raise AudiobenchError(f"{path}, row {row}: onset {onset[row - 1]} does not continue the previous "
                              f"frame's offset {offset[row - 2]}.", hint="Frames must be contiguous and sorted.")
    return values.astype(float)
