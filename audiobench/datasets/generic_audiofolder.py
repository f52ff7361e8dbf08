"""The ``audiofolder`` layout (as Hugging Face ``audiofolder`` / torchvision ``ImageFolder``): class folders.

``<root>/<class>/<file>`` (no splits: evaluate with ``--cv K``, never official) or
``<root>/<split>/<class>/<file>``, where the split folders are either named splits (``train``, ``valid``,
``test``, ...: clips get that ``split``) or ``fold1``..``foldK`` (clips get ``fold`` 1..K). The classes are
the class folder names in sorted (Unicode code point) order: class index ``i`` is the ``i``-th name. Audio
files are recognised by extension (:data:`~audiobench.datasets.generic_common.AUDIO_EXTENSIONS`); other
files are ignored, and so is every hidden entry (name starting with ``.``). A clip's id is its path under
``<root>`` without the extension (``train/dog/001``), so converting wav to flac keeps the clip list's hash.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from audiobench.datasets.base import Clip, DatasetIndex, list_sha256
from audiobench.datasets.generic_common import (AUDIO_EXTENSIONS, dataset_root, is_audio, is_hidden, pinned_official,
                                                refuse_download, text_list)
from audiobench.errors import DatasetError

LAYOUT = (f"<root>/<class>/<file> or <root>/<split>/<class>/<file> (split folders such as train/valid/test, "
          f"or fold1..foldK), audio files {'/'.join(e[1:] for e in AUDIO_EXTENSIONS)}")
FOLD = re.compile(r"fold(\d+)", re.IGNORECASE)


def _entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """The visible sub-folders and audio files of ``folder``, sorted by name (other files are ignored)."""
    try:
        items = sorted(p for p in folder.iterdir() if not is_hidden(p))
    except OSError as error:
        raise DatasetError(f"{folder} cannot be listed ({error.strerror or error}).",
                           hint="Check the folder's permissions.") from None
    return [p for p in items if p.is_dir()], [p for p in items if p.is_file() and is_audio(p)]


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """Class name -> audio files, for the class folders ``<folder>/<class>/<file>`` (sorted by class name)."""
    dirs, files = _entries(folder)
    if files:
        raise DatasetError(f"{files[0]} lies directly in {folder}, where only class folders are expected.",
                           hint=f"Move it into its class folder; expected layout: {LAYOUT}.")
    if not dirs:
        raise DatasetError(f"{folder} holds no class folders.", hint=f"Expected layout: {LAYOUT}.")
    classes: dict[str, list[Path]] = {}
    for directory in dirs:
        subdirs, audio = _entries(directory)
        if subdirs:
            raise DatasetError(f"{subdirs[0]} is a folder inside the class folder {directory}; class folders hold "
                               f"audio files only.",
                               hint=f"Move its files up, or remove it; expected layout: {LAYOUT}.")
        if not audio:
            raise DatasetError(f"Class folder {directory} holds no audio file ({', '.join(AUDIO_EXTENSIONS)}).",
                               hint="Add the class's clips, or remove the empty folder.")
        classes[directory.name] = audio
    return classes


def _split_folders(root: Path, splits: list[str] | None) -> list[Path] | None:
    """The split folders (the ``splits`` option, else detected), or None for the layout without splits."""
    if splits is not None:
        for split in splits:
            if not (root / split).is_dir():
                raise DatasetError(f"Split folder {root / split} (named in dataset_options.splits) does not exist.",
                                   hint=f"Check the split names; expected layout: {LAYOUT}.")
        return [root / split for split in splits]
    dirs, files = _entries(root)
    if files:
        raise DatasetError(f"{files[0]} lies directly in {root}, where only class or split folders are expected.",
                           hint=f"Move it into its class folder; expected layout: {LAYOUT}.")
    if not dirs:
        raise DatasetError(f"{root} holds no class or split folders.", hint=f"Expected layout: {LAYOUT}.")
    nested = [d for d in dirs if _entries(d)[0]]
    flat = [d for d in dirs if d not in nested]
    if not nested:
        return None
    if flat:
        holds = "holds audio files directly" if _entries(flat[0])[1] else "holds neither class folders nor audio files"
        raise DatasetError(f"{root} mixes layouts: {nested[0]} holds class folders (a split) but {flat[0]} {holds}.",
                           hint=f"Use one layout for the whole tree: {LAYOUT}.")
    return dirs


def _fold_numbers(folders: list[Path]) -> dict[str, int] | None:
    """Fold number of every split folder when they are all named ``fold<N>``; None for named splits."""
    matches = {folder.name: FOLD.fullmatch(folder.name) for folder in folders}
    named = [name for name, match in matches.items() if match is None]
    if named and len(named) < len(matches):
        folds = [name for name in matches if name not in named]
        raise DatasetError(f"{folders[0].parent} mixes fold folders ({folds[0]}) and named splits ({named[0]}).",
                           hint="Name all split folders fold1..foldK, or all by split (train, valid, test).")
    if named:
        return None
    numbers: dict[str, int] = {}
    for name, match in matches.items():
        number = int(match.group(1))
        twin = [other for other, n in numbers.items() if n == number]
        if twin:
            raise DatasetError(f"{folders[0].parent}: split folders {twin[0]} and {name} are both fold {number}.",
                               hint="Keep one folder per fold number.")
        numbers[name] = number
    return numbers


def _check_same_classes(parts: list[tuple[Path, dict[str, list[Path]]]]) -> None:
    """Every split folder must hold the same class folders (a class absent from a split is an error)."""
    every = sorted({label for _, classes in parts for label in classes})
    for folder, classes in parts:
        lacking = [label for label in every if label not in classes]
        if lacking:
            other = next(f for f, c in parts if lacking[0] in c)
            raise DatasetError(f"Split folder {folder} lacks the class folder(s) {', '.join(lacking)} "
                               f"({lacking[0]} is in {other}): every split needs the same class folders.",
                               hint="Add the missing class folders with their clips, or remove the class everywhere.")


def load_audiofolder(data_dir: Path | None = None, download: bool = False, root: str | Path | None = None,
                     splits: list[str] | None = None, name: str | None = None, official: Any = None) -> DatasetIndex:
    """Index the clips of a class-folder tree (see the module docstring for the layout).

    ``root``: the dataset folder, relative to ``data_dir`` (default: ``data_dir`` itself); ``splits``: the
    split folders to read (default: every folder, when the tree has a split level); ``name``: the
    dataset's name in records; ``official``: the pinned official list ``{clips: N, sha256: ...}``
    (:func:`~audiobench.datasets.generic_common.pinned_official`), without which no run is official.
    """
    name = name or "audiofolder"
    refuse_download(download, name, LAYOUT)
    folder = dataset_root(data_dir, root, name, LAYOUT)
    pinned = pinned_official(official, name)
    split_dirs = _split_folders(folder, text_list(splits, "splits", name))
    parts: list[tuple[Path | None, dict[str, list[Path]]]]
    if split_dirs is None:
        parts, folds = [(None, _class_files(folder))], None
    else:
        parts, folds = [(d, _class_files(d)) for d in split_dirs], _fold_numbers(split_dirs)
        _check_same_classes(parts)  # type: ignore[arg-type]
    classes = sorted(parts[0][1])  # class index = position of the folder name in sorted order
    index = {label: i for i, label in enumerate(classes)}
    clips: list[Clip] = []
    rows: list[tuple[str, str, object]] = []
    seen: dict[str, Path] = {}
    expected: dict[int, int] = {}
    for split_dir, by_class in parts:
        fold = folds[split_dir.name] if folds and split_dir is not None else None
        split = split_dir.name if split_dir is not None and fold is None else None
        for label, files in by_class.items():
            for path in files:
                clip_id = path.relative_to(folder).with_suffix("").as_posix()
                if clip_id in seen:
                    raise DatasetError(f"{seen[clip_id]} and {path} are the same clip {clip_id!r} twice (one name, "
                                       f"two audio formats).", hint="Keep one of the two files.")
                seen[clip_id] = path
                clips.append(Clip(clip_id=clip_id, path=path, label=index[label], fold=fold, split=split))
                rows.append((clip_id, label, split if fold is None else fold))
                if fold is not None:
                    expected[fold] = expected.get(fold, 0) + 1
    return DatasetIndex(name=name, classes=classes, clips=clips, expected_per_fold=dict(sorted(expected.items())),
                        official_list=pinned, listed_sha256=list_sha256(rows))
