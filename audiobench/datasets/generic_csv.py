"""The ``csv`` layout: a metadata table (csv or tsv with a header line) plus a folder of audio files.

Each row names one audio file (``file_column``, a path relative to the ``audio`` folder; a file with the
same name and another audio extension is accepted) and its label (``label_column``: a class name, or for
multi-label tasks the class names joined by ``label_separator``; an empty field is then a clip without
positive classes). Optional columns give the clip's fold number (``fold_column``), split name
(``split_column``) and group (``group_column``, e.g. the recording device, for per-group scores). The class
order is the ``classes`` option when the card gives it, else the sorted (Unicode code point order) unique
names of the table. A listed file that is absent goes to ``missing`` (the run is then not official).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from audiobench.datasets.base import Clip, DatasetIndex, check_unique, list_sha256
from audiobench.datasets.generic_common import (AUDIO_EXTENSIONS, dataset_root, pinned_official, refuse_download,
                                                text_list)
from audiobench.datasets.table import Row, read_table
from audiobench.errors import DatasetError

LAYOUT = ("<root>/<metadata table> (a header line, one row per clip: file, label(s), optional fold/split/group) "
          "and <root>/<audio folder>/<file>")
DELIMITERS = {"tab": "\t", "\\t": "\t"}  # spellings of a tab that survive YAML without quoting


def _labels(row: Row, column: str, separator: str | None) -> str | tuple[str, ...]:
    """A class name, or (multi-label) the sorted distinct names of the field split at ``separator``."""
    if separator is None:
        return row.text(column)
    names = {part.strip() for part in row.fields.get(column, "").split(separator)}
    return tuple(sorted(names - {""}))


def _stem(file: str) -> str:
    """A listed file's audio identity: its path without extension (``a.wav`` and ``a.flac`` are one clip)."""
    return PurePosixPath(file).with_suffix("").as_posix()


def _audio_path(folder: Path, name: str) -> Path | None:
    """The audio file of metadata entry ``name``: itself, else the same path with another audio extension."""
    path = folder / name
    candidates = [path, *(path.with_suffix(ext) for ext in AUDIO_EXTENSIONS if ext != path.suffix.lower())]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if path.exists():
        raise DatasetError(f"{path} is a directory (or not a regular file) where an audio clip should be.",
                           hint="Replace it with the clip's audio file, or remove it.")
    return None


def _class_index(listed: list[tuple[Row, str, Any, object, str | None]], classes: list[str] | None,
                 column: str) -> dict[str, int]:
    """Class name -> index: the card's ``classes`` order, else the sorted names found in the table."""
    found = {n for _, _, labels, _, _ in listed for n in ((labels,) if isinstance(labels, str) else labels)}
    if classes is None:
        return {label: i for i, label in enumerate(sorted(found))}
    for row, _, labels, _, _ in listed:
        for label in (labels,) if isinstance(labels, str) else labels:
            if label not in classes:
                raise DatasetError(f"{row.path}, row {row.line}, column {column!r}: {label!r} is not one of the "
                                   f"classes of dataset_options.classes ({', '.join(classes)}).",
                                   hint="Fix the label, or add the class to dataset_options.classes.")
    return {label: i for i, label in enumerate(classes)}


def load_csv(data_dir: Path | None = None, download: bool = False, metadata: str = "meta.csv", audio: str = "audio",
             delimiter: str = ",", file_column: str = "filename", label_column: str = "label",
             fold_column: str | None = None, split_column: str | None = None, group_column: str | None = None,
             label_separator: str | None = None, classes: list[str] | None = None, official: Any = None,
             name: str | None = None, root: str | Path | None = None) -> DatasetIndex:
    """Index the clips a metadata table lists (see the module docstring for the layout and the options).

    ``metadata`` and ``audio`` are relative to the dataset folder (``root`` under ``data_dir``, default
    ``data_dir``); ``delimiter`` is one character (``tab`` for a tsv); ``official`` is the pinned official
    list ``{clips: N, sha256: ...}`` (:func:`~audiobench.datasets.generic_common.pinned_official`).
    Metadata errors name the file, the row and the column; a file listed twice is refused.
    """
    name = name or "csv"
    refuse_download(download, name, LAYOUT)
    folder = dataset_root(data_dir, root, name, LAYOUT)
    pinned = pinned_official(official, name)
    class_names = text_list(classes, "classes", name)
    delimiter = DELIMITERS.get(delimiter, delimiter)
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise DatasetError(f"dataset_options.delimiter of {name!r} must be one character (or tab), not {delimiter!r}.",
                           hint='Write delimiter: "," for csv, delimiter: tab for tsv.')
    if fold_column and split_column:
        raise DatasetError(f"dataset_options of {name!r} give both fold_column and split_column; a clip belongs to "
                           f"a fold or to a split.", hint="Keep the one the task's protocol uses.")
    table, audio_dir = folder / metadata, folder / audio
    if not table.exists():
        raise DatasetError(f"Metadata table {table} of {name!r} not found.", hint=f"Expected layout: {LAYOUT}.")
    if not audio_dir.is_dir():
        raise DatasetError(f"Audio folder {audio_dir} of {name!r} not found.",
                           hint=f"Set dataset_options.audio to the folder holding the files; expected: {LAYOUT}.")
    optional = [c for c in (fold_column, split_column, group_column) if c]
    rows = read_table(table, [file_column, label_column, *optional], delimiter)
    listed = [(row, row.text(file_column), _labels(row, label_column, label_separator),
               row.integer(fold_column) if fold_column else (row.text(split_column) if split_column else None),
               row.text(group_column) if group_column else None) for row in rows]
    check_unique(((file, f"row {row.line}", part if fold_column else None, _stem(file))
                  for row, file, _, part, _ in listed), table)
    index = _class_index(listed, class_names, label_column)
    clips, missing, expected = [], [], {}
    for _, file, labels, part, group in listed:
        label = index[labels] if isinstance(labels, str) else tuple(sorted(index[n] for n in labels))
        fold = part if fold_column else None
        if fold is not None:
            expected[fold] = expected.get(fold, 0) + 1
        path = _audio_path(audio_dir, file)
        if path is None:
            missing.append(file)
            continue
        clips.append(Clip(clip_id=file, path=path, label=label, fold=fold, group=group,
                          split=None if fold_column else part))
    return DatasetIndex(name=name, classes=list(index), clips=clips, expected_per_fold=dict(sorted(expected.items())),
                        missing=missing, official_list=pinned,
                        listed_sha256=list_sha256((file, labels, part) for _, file, labels, part, _ in listed))
