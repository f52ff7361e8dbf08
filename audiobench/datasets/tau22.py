"""TAU Urban Acoustic Scenes 2022 Mobile (DCASE 2023 task 1): 1 s clips, 10 scenes, 9 devices.

Official layout (Zenodo record 6337421, development set, unpacked): ``<root>/audio/*.wav`` (1 s, 44.1 kHz),
``<root>/meta.csv`` (tab-separated: filename, scene_label, identifier, source_label) and
``<root>/evaluation_setup/fold1_{train,evaluate,test}.csv``; the DCASE24 subset lists ``split<N>.csv`` /
``test.csv`` go to ``<root>/split_setup/`` (see :mod:`audiobench.datasets.tau22_splits`).

Clips: ``split`` = ``train``/``test``, ``group`` = the recording device (the filename suffix ``-a``, ``-b``,
``-c``, ``-s1`` ... ``-s6``), label = scene index in :data:`audiobench.labels.TAU22_SCENES` order (the
alphabetical order the DCASE baselines and CP-Mobile use). The city (first part of the identifier,
``barcelona-203``, and second part of the file name) is not needed by any protocol and is not stored.
"""

from __future__ import annotations

import os
from pathlib import Path

from audiobench.cachedir import cache_subdir
from audiobench.datasets.base import Clip, DatasetIndex, check_unique, list_sha256
from audiobench.datasets.table import Row, read_table
from audiobench.datasets.tau22_splits import list_files, normalise_setup, official_list
from audiobench.errors import DatasetError
from audiobench.labels import TAU22_SCENES

ZENODO_URL = "https://zenodo.org/record/6337421"
ARCHIVE_FOLDER = "TAU-urban-acoustic-scenes-2022-mobile-development"  # the folder the Zenodo zips unpack to
DEVICES = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")
META_COLUMNS = ("filename", "scene_label", "identifier", "source_label")
CLIP_SECONDS = 1.0
LAYOUT = ("audio/*.wav, meta.csv (tab-separated: filename, scene_label, identifier, source_label) and "
          "evaluation_setup/fold1_train.csv + fold1_evaluate.csv")


def default_root() -> Path:
    """Where TAU22 is looked for in the audiobench cache when no ``data_dir`` is given."""
    return cache_subdir("datasets") / "tau22"


def device_of(filename: str) -> str:
    """The recording device of a TAU22 file name (``.../airport-lisbon-1000-40000-0-s4.wav`` -> ``s4``)."""
    stem = Path(filename).stem
    return stem.rsplit("-", 1)[1] if "-" in stem else ""


def _root(data_dir: Path | None, download: bool) -> Path:
    root = Path(data_dir).expanduser() if data_dir is not None else default_root()
    if not (root / "meta.csv").is_file() and (root / ARCHIVE_FOLDER / "meta.csv").is_file():
        root = root / ARCHIVE_FOLDER  # the parent of the unpacked archive folder was given
    if (root / "meta.csv").is_file():
        return root
    steps = (f"Download the development set from {ZENODO_URL} (TAU-urban-acoustic-scenes-2022-mobile-development"
             f".audio.1-16.zip and .meta.zip), unzip all into one folder and point --data-dir at it "
             f"(or unzip into {default_root()}). Expected layout: {LAYOUT}.")
    if download:
        raise DatasetError("tau22: --download is not supported (16 archives, ~25 GB, no published checksums).",
                           hint=steps)
    raise DatasetError(f"tau22: metadata {root / 'meta.csv'} not found.", hint=steps)


def _scene(row: Row) -> int:
    scene = row.text("scene_label")
    if scene not in TAU22_SCENES:
        raise DatasetError(f"{row.path}, row {row.line}, column 'scene_label': unknown scene {scene!r}.",
                           hint=f"TAU22 scenes are {', '.join(TAU22_SCENES)}; restore the official meta.csv.")
    return TAU22_SCENES.index(scene)


def _device(row: Row, filename: str) -> str:
    device = device_of(filename)
    if device not in DEVICES:
        raise DatasetError(f"{row.path}, row {row.line}, column 'filename': {filename!r} does not end in a TAU22 "
                           f"device suffix (got {device!r}).",
                           hint=f"File names end in -<device>.wav with device one of {', '.join(DEVICES)}.")
    source = row.text("source_label")
    if source != device:
        raise DatasetError(f"{row.path}, row {row.line}, column 'source_label': {source!r} disagrees with the "
                           f"device {device!r} of the file name {filename!r}.",
                           hint="Restore the official meta.csv.")
    return device


def read_meta(path: Path) -> dict[str, tuple[Row, int, str]]:
    """``meta.csv`` rows by file name: (row, scene index, device); bad scenes/devices name file and row."""
    rows = read_table(path, META_COLUMNS, delimiter="\t")
    meta: dict[str, tuple[Row, int, str]] = {}
    entries = []
    for row in rows:
        filename = row.text("filename")
        meta[filename] = (row, _scene(row), _device(row, filename))
        entries.append((filename, f"row {row.line}", None, filename))
    check_unique(entries, path)
    return meta


def _listed(path: Path, meta: dict[str, tuple[Row, int, str]], meta_path: Path) -> list[tuple[Row, str]]:
    """(row, filename) of a train/test list; every file must be in meta.csv with the same scene."""
    rows = read_table(path, ("filename",), delimiter="\t")
    listed = []
    for row in rows:
        filename = row.text("filename")
        if filename not in meta:
            raise DatasetError(f"{path}, row {row.line}, column 'filename': {filename!r} is not listed in {meta_path}.",
                               hint="The list and meta.csv must come from the same release; restore both.")
        if "scene_label" in row.fields and row.fields["scene_label"].strip():
            scene = row.fields["scene_label"].strip()
            meta_row, label, _ = meta[filename]
            if scene != TAU22_SCENES[label]:
                raise DatasetError(f"{path}, row {row.line}, column 'scene_label': {scene!r} disagrees with "
                                   f"{meta_path} row {meta_row.line} ({TAU22_SCENES[label]!r}) for {filename!r}.",
                                   hint="Restore the official list and meta.csv.")
        listed.append((row, filename))
    return listed


def _present_files(root: Path, filenames: list[str]) -> set[str]:
    """The listed file names that exist as regular files (one directory listing per folder)."""
    listings: dict[Path, dict[str, bool]] = {}
    present = set()
    for filename in filenames:
        path = root / filename
        folder = path.parent
        if folder not in listings:
            try:
                with os.scandir(folder) as entries:
                    listings[folder] = {entry.name: entry.is_file() for entry in entries}
            except OSError:
                listings[folder] = {}
        kind = listings[folder].get(path.name)
        if kind is False:
            raise DatasetError(f"{path} is a directory (or not a regular file) where an audio clip should be.",
                               hint="Replace it with the clip's audio file, or remove it.")
        if kind:
            present.add(filename)
    return present


def load_tau22(data_dir: Path | None = None, download: bool = False, split: str | int = "fold1") -> DatasetIndex:
    """Index the TAU22 clips of the ``split`` setup present under ``data_dir`` (default: the cache).

    ``split="fold1"`` (default): DCASE23 task 1 development evaluation (fold1_train -> fold1_evaluate);
    ``split="5"|"10"|"25"|"50"|"100"``: DCASE24 ``split<N>.csv`` -> ``test.csv``. Listed clips without audio
    go to ``missing`` (the run is then labelled non-official with its coverage); metadata errors name the
    file, the row and the column.
    """
    setup = normalise_setup(split)
    root = _root(data_dir, download)
    meta_path = root / "meta.csv"
    meta = read_meta(meta_path)
    lists = list_files(root, setup)
    roles = [(role, path, _listed(path, meta, meta_path)) for role, path in lists.items()]
    check_unique(((name, f"{path.name} row {row.line}", None, name) for _, path, listed in roles
                  for row, name in listed), f"tau22 {' + '.join(str(path) for _, path, _ in roles)}")
    everything = [(role, name) for role, _, listed in roles for _, name in listed]
    present = _present_files(root, [name for _, name in everything])
    clips, missing = [], []
    for role, name in everything:
        _, label, device = meta[name]
        if name in present:
            clips.append(Clip(clip_id=name, path=root / name, label=label, group=device, split=role))
        else:
            missing.append(name)
    return DatasetIndex(name="tau22", classes=list(TAU22_SCENES), clips=clips, missing=missing,
                        clip_seconds=CLIP_SECONDS, official_list=official_list(setup),
                        listed_sha256=list_sha256((name, meta[name][1], role) for role, name in everything))
