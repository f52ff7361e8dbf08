"""The official AudioSet metadata files: the class list and the segment lists.

``class_labels_indices.csv`` has a header ``index,mid,display_name`` (display names are quoted when they
contain commas). A segment list (``balanced_train_segments.csv``, ``unbalanced_train_segments.csv``,
``eval_segments.csv``) starts with three comment lines beginning with ``#``, then one row per 10 s segment::

    --PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"

(YouTube id, start and end in seconds, the positive labels as quoted comma-joined MIDs; a space follows
each separating comma). Every problem is a :class:`DatasetError` naming the file, the row and the column.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from audiobench.datasets.table import read_table
from audiobench.errors import DatasetError

#: A YouTube video id: 11 characters of ``A-Z a-z 0-9 _ -``.
YTID = re.compile(r"[A-Za-z0-9_-]{11}")
SEGMENT_COLUMNS = ("YTID", "start_seconds", "end_seconds", "positive_labels")
CLASS_COLUMNS = ("index", "mid", "display_name")


@dataclass(frozen=True)
class Segment:
    """One row of a segment list: the clip's YouTube id, its start/end (s), its positive class indices."""

    ytid: str
    start: float
    end: float
    labels: tuple[int, ...]
    line: int


@dataclass(frozen=True)
class ClassList:
    """The AudioSet classes in index order: their MIDs and display names."""

    mids: list[str]
    names: list[str]
    path: Path

    def index_of(self) -> dict[str, int]:
        """MID -> class index."""
        return {mid: i for i, mid in enumerate(self.mids)}


def read_class_list(path: Path) -> ClassList:
    """Read ``class_labels_indices.csv``; indices must be ``0 .. N-1`` once each and MIDs unique."""
    rows = read_table(path, CLASS_COLUMNS)
    by_index: dict[int, tuple[str, str]] = {}
    seen: dict[str, int] = {}
    for row in rows:
        index, mid = row.integer("index", 0, len(rows) - 1), row.text("mid")
        if index in by_index or mid in seen:
            what = f"index {index}" if index in by_index else f"mid {mid!r}"
            raise DatasetError(f"{path}, row {row.line}: {what} is listed twice.",
                               hint="Restore class_labels_indices.csv from the AudioSet release.")
        by_index[index], seen[mid] = (mid, row.text("display_name")), row.line
    ordered = [by_index[i] for i in range(len(rows))]
    return ClassList(mids=[m for m, _ in ordered], names=[n for _, n in ordered], path=Path(path))


def _text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{path} cannot be read ({error.strerror or error}).",
                           hint="Check the path and its permissions.") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise DatasetError(f"{path}, row {line}: byte 0x{data[error.start]:02x} is not UTF-8.",
                           hint="Restore the official segment list from the AudioSet release.") from None


def _seconds(path: Path, line: int, column: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0.0:  # also refuses nan
        raise DatasetError(f"{path}, row {line}, column {column!r}: {value!r} is not a time in seconds.",
                           hint="Segment rows read `YTID, start_seconds, end_seconds, \"MIDs\"`; restore the "
                                "official file.")
    return seconds


def _parse_row(path: Path, line: int, fields: list[str], mid_index: dict[str, int]) -> Segment:
    if len(fields) != len(SEGMENT_COLUMNS):
        raise DatasetError(f"{path}, row {line}: {len(fields)} field(s), expected 4 ({', '.join(SEGMENT_COLUMNS)}).",
                           hint="The positive labels must be one quoted field, e.g. \"/m/09x0r,/t/dd00088\"; "
                                "restore the official file.")
    ytid, start, end, labels = (field.strip() for field in fields)
    if not YTID.fullmatch(ytid):
        raise DatasetError(f"{path}, row {line}, column 'YTID': {ytid!r} is not a YouTube id "
                           f"(11 characters of A-Z a-z 0-9 _ -).", hint="Restore the official segment list.")
    start_s = _seconds(path, line, "start_seconds", start)
    end_s = _seconds(path, line, "end_seconds", end)
    if end_s <= start_s:
        raise DatasetError(f"{path}, row {line}, column 'end_seconds': {end} is not after the start {start}.",
                           hint="Restore the official segment list.")
    mids = [mid.strip() for mid in labels.split(",") if mid.strip()]
    if not mids:
        raise DatasetError(f"{path}, row {line}, column 'positive_labels' is empty.",
                           hint="Every AudioSet segment has at least one label; restore the official file.")
    unknown = [mid for mid in mids if mid not in mid_index]
    if unknown:
        raise DatasetError(f"{path}, row {line}, column 'positive_labels': unknown MID(s) {', '.join(unknown)} "
                           f"(not in class_labels_indices.csv).",
                           hint="Use the class_labels_indices.csv of the same AudioSet release as the segment lists.")
    return Segment(ytid=ytid, start=start_s, end=end_s, labels=tuple(sorted({mid_index[m] for m in mids})),
                   line=line)


def read_segments(path: Path, classes: ClassList) -> list[Segment]:
    """The rows of an official segment list (``#`` comment lines skipped), labels as class indices."""
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{path} is a directory, not an AudioSet segment list.",
                           hint="Point at the folder holding the official segment csv files.")
    mid_index = classes.index_of()
    reader = csv.reader(io.StringIO(_text(path), newline=""), skipinitialspace=True)
    segments = []
    for fields in reader:
        if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
            continue
        segments.append(_parse_row(path, reader.line_num, fields, mid_index))
    if not segments:
        raise DatasetError(f"{path} lists no segment.", hint="Restore the official segment list.")
    return segments
