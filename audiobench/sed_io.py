"""Read and validate the DCASE sound-event-detection tables (ground truth, durations, detections).

Formats (tab- or comma-separated, chosen from the header line; header names are matched, so the
columns may come in any order; an unnamed leading index column, as pandas writes, is ignored):

- events (ground truth, detections): ``filename onset offset event_label``; a ground-truth row with
  an empty label and empty times lists a clip without events;
- durations: ``filename duration``.

Every problem is an :class:`~audiobench.errors.AudiobenchError` naming the file and the data row
(row 1 = the first line after the header).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
import pandas as pd

from audiobench.errors import AudiobenchError

EVENT_COLUMNS = ("filename", "onset", "offset", "event_label")
DURATION_COLUMNS = ("filename", "duration")
FloatParsing = Literal["exact", "legacy"]


@dataclass(frozen=True)
class EventTable:
    """Events of one file (columns filename, onset, offset, event_label, row) and every clip it lists.

    (Kept out of ``DataFrame.attrs``: pandas deep-copies attrs on every operation, which made
    psds_eval and sed_eval several times slower.)
    """

    events: pd.DataFrame
    clips: frozenset[str]
    path: Path


def _parser(float_parsing: FloatParsing) -> str:
    """pandas ``float_precision``: "high" parses decimals exactly (round trip), "legacy" is the
    pre-1.3 pandas default, whose last-bit errors flip events lying exactly on a collar."""
    if float_parsing not in ("exact", "legacy"):
        raise AudiobenchError(f"Unknown float parsing {float_parsing!r}.", hint="Use exact or legacy.")
    return "high" if float_parsing == "exact" else "legacy"


def read_table(path: Path, required: Iterable[str], float_parsing: FloatParsing = "exact",
               text_columns: Iterable[str] = ("filename", "event_label")) -> pd.DataFrame:
    """Read a delimited table and check that its header names every ``required`` column."""
    path = Path(path)
    if not path.is_file():
        raise AudiobenchError(f"{path}: file not found.", hint="Check the path.")
    with path.open(encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    if not header.strip():
        raise AudiobenchError(f"{path}: the file is empty (no header line).",
                              hint=f"The first line must name the columns: {' '.join(required)}.")
    sep = "\t" if "\t" in header else ","
    try:
        frame = pd.read_csv(path, sep=sep, float_precision=_parser(float_parsing),
                            dtype={name: str for name in text_columns}, keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise AudiobenchError(f"{path}: not a readable table ({error}).",
                              hint="Use one header line and one row per line, tab-separated.") from error
    frame.columns = [str(name).strip() for name in frame.columns]
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("Unnamed: ") or c == ""])
    missing = [name for name in required if name not in frame.columns]
    if missing:
        raise AudiobenchError(
            f"{path}: header has no column {', '.join(missing)} (found: {', '.join(frame.columns)}).",
            hint=f"The header must name {', '.join(required)} (any order).")
    return frame.reset_index(drop=True)


def _numeric(frame: pd.DataFrame, column: str, path: Path, allow_missing: pd.Series | None = None) -> None:
    """Convert ``column`` to float in place; the first non-number names its row."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & ~(frame[column].isna() & (allow_missing if allow_missing is not None else False))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise AudiobenchError(f"{path}, row {row + 1}: {column} {frame[column].iloc[row]!r} is not a number.",
                              hint=f"Every {column} must be a time in seconds.")
    frame[column] = values.astype(float)


def read_events(path: Path, *, labels: set[str] | None = None, clips: set[str] | None = None,
                float_parsing: FloatParsing = "exact") -> EventTable:
    """Read an event table; check times, labels (``labels``) and clip names (``clips``).

    Rows listing a clip without events (empty label and times) are dropped from ``events``; the
    clips they name stay in ``clips`` (every clip the file lists).
    """
    frame = read_table(path, EVENT_COLUMNS, float_parsing)
    frame = frame[list(EVENT_COLUMNS)]
    if frame["filename"].isna().any():
        row = int(np.flatnonzero(frame["filename"].isna().to_numpy())[0])
        raise AudiobenchError(f"{path}, row {row + 1}: empty filename.", hint="Every row must name its clip.")
    no_event = frame["event_label"].isna() & frame["onset"].isna() & frame["offset"].isna()
    _numeric(frame, "onset", path, no_event)
    _numeric(frame, "offset", path, no_event)
    unlabelled = frame["event_label"].isna() & ~no_event
    if unlabelled.any():
        row = int(np.flatnonzero(unlabelled.to_numpy())[0])
        raise AudiobenchError(f"{path}, row {row + 1}: event without event_label.",
                              hint="Give the class, or leave onset, offset and label all empty for a clip "
                                   "without events.")
    listed = set(frame["filename"])
    events = frame[~no_event].copy()
    events["row"] = events.index + 1
    _check_times(events, path)
    if labels is not None:
        unknown = ~events["event_label"].isin(labels)
        if unknown.any():
            first = events[unknown].iloc[0]
            raise AudiobenchError(
                f"{path}, row {first['row']}: unknown class label {first['event_label']!r} "
                f"({int(unknown.sum())} row(s) with labels not in the ground truth).",
                hint=f"The ground truth's classes are: {', '.join(sorted(labels))}.")
    if clips is not None:
        _check_clips(events, clips, path)
    return EventTable(events.reset_index(drop=True), frozenset(listed), Path(path))


def _check_times(events: pd.DataFrame, path: Path) -> None:
    bad = events["onset"] > events["offset"]
    if bad.any():
        first = events[bad].iloc[0]
        raise AudiobenchError(
            f"{path}, row {first['row']}: onset {first['onset']} is after offset {first['offset']} "
            f"({int(bad.sum())} such row(s)).",
            hint="Check the column order in the header: onset must come before offset in time.")
    negative = events["onset"] < 0
    if negative.any():
        first = events[negative].iloc[0]
        raise AudiobenchError(f"{path}, row {first['row']}: negative onset {first['onset']}.",
                              hint="Times are seconds from the start of the clip.")


def _check_clips(events: pd.DataFrame, clips: set[str], path: Path) -> None:
    missing = ~events["filename"].isin(clips)
    if missing.any():
        first = events[missing].iloc[0]
        names = sorted(set(events.loc[missing, "filename"]))
        raise AudiobenchError(
            f"{path}, row {first['row']}: clip {first['filename']!r} is not in the durations file "
            f"({len(names)} clip(s) missing).",
            hint="Every clip must have a duration; use the durations file of the same evaluation set.")


def check_no_overlaps(events: pd.DataFrame, path: Path | str) -> None:
    """Same-class events of one clip may not overlap (identical repeats excepted, as in psds_eval)."""
    ordered = events.sort_values(["filename", "event_label", "onset", "offset"], kind="stable")
    same = (ordered["filename"].to_numpy()[1:] == ordered["filename"].to_numpy()[:-1]) & \
           (ordered["event_label"].to_numpy()[1:] == ordered["event_label"].to_numpy()[:-1])
    previous_offset = ordered.groupby(["filename", "event_label"])["offset"].cummax().to_numpy()[:-1]
    identical = (ordered["onset"].to_numpy()[1:] == ordered["onset"].to_numpy()[:-1]) & \
                (ordered["offset"].to_numpy()[1:] == ordered["offset"].to_numpy()[:-1])
    overlap = same & (ordered["onset"].to_numpy()[1:] < previous_offset) & ~identical
    if overlap.any():
        index = int(np.flatnonzero(overlap)[0]) + 1
        row = ordered.iloc[index]
        raise AudiobenchError(
            f"{path}, row {row['row']}: {row['event_label']} event {row['onset']}-{row['offset']} s of "
            f"{row['filename']!r} overlaps another {row['event_label']} event of the same clip.",
            hint="Merge overlapping events of one class before scoring (the PSDS implementations require it).")


def read_durations(path: Path, float_parsing: FloatParsing = "exact") -> pd.DataFrame:
    """Read ``filename duration``; durations must be positive and clips listed once."""
    frame = read_table(path, DURATION_COLUMNS, float_parsing)[list(DURATION_COLUMNS)]
    _numeric(frame, "duration", path)
    bad = ~(frame["duration"] > 0)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise AudiobenchError(f"{path}, row {row + 1}: duration {frame['duration'].iloc[row]} is not positive.",
                              hint="Durations are clip lengths in seconds.")
    repeated = frame["filename"].duplicated()
    if repeated.any():
        row = int(np.flatnonzero(repeated.to_numpy())[0])
        raise AudiobenchError(f"{path}, row {row + 1}: clip {frame['filename'].iloc[row]!r} is listed twice.",
                              hint="List each clip once.")
    return frame.reset_index(drop=True)


def read_ground_truth(path: Path, durations: pd.DataFrame, float_parsing: FloatParsing = "exact") -> EventTable:
    """Read the ground truth, check its clips have durations and same-class events do not overlap."""
    truth = read_events(path, clips=set(durations["filename"]), float_parsing=float_parsing)
    missing = sorted(truth.clips - set(durations["filename"]))
    if missing:
        raise AudiobenchError(f"{path}: clip {missing[0]!r} is not in the durations file "
                              f"({len(missing)} clip(s) missing).",
                              hint="Every clip must have a duration; use the durations file of the same set.")
    if truth.events.empty:
        raise AudiobenchError(f"{path}: the ground truth has no events.", hint="Nothing can be scored.")
    check_no_overlaps(truth.events, path)
    return truth
