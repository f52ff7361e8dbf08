"""FSD50K (Fonseca et al., TASLP 2022): 51,197 Freesound clips of 0.3-30 s, 200 AudioSet-ontology classes.

Two layouts are read (``layout="auto"``: :func:`detect_layout`):

* ``raw``, the Zenodo release (https://zenodo.org/record/4060432): ``FSD50K.dev_audio/<fname>.wav``,
  ``FSD50K.eval_audio/<fname>.wav`` and ``FSD50K.ground_truth/`` with ``dev.csv`` (fname, labels, mids,
  split = train|val), ``eval.csv`` (fname, labels, mids) and ``vocabulary.csv`` (no header: index, label,
  mid). ``labels`` and ``mids`` are quoted comma-joined lists (labels smeared up the ontology).
* ``hdf5``, the PaSST/EfficientAT files ``FSD50K.train_mp3.hdf``, ``FSD50K.val_mp3.hdf``,
  ``FSD50K.eval_mp3.hdf`` (:mod:`audiobench.datasets.hdf5_layout`, 200-bit targets in vocabulary order). They
  store no class names, so ``vocabulary.csv`` must be next to them (or in ``FSD50K.ground_truth/``); their
  mp3 rows are written out once into the cache (see :func:`~audiobench.datasets.hdf5_layout.materialise`).

Splits: ``train`` (dev, split=train), ``valid`` (dev, split=val), ``test`` (eval). Clip ids are the fnames
(Freesound ids) in both layouts, so both give the same clip list.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from audiobench.cachedir import cache_subdir
from audiobench.datasets.base import Clip, DatasetIndex, OfficialList, check_unique, list_sha256
from audiobench.datasets.hdf5_layout import materialise, open_hdf5
from audiobench.datasets.table import Row, read_table
from audiobench.errors import DatasetError

HOMEPAGE = "https://zenodo.org/record/4060432"
GROUND_TRUTH = "FSD50K.ground_truth"
AUDIO_DIRS = {"dev": "FSD50K.dev_audio", "eval": "FSD50K.eval_audio"}
HDF5_FILES = {"train": "FSD50K.train_mp3.hdf", "valid": "FSD50K.val_mp3.hdf", "test": "FSD50K.eval_mp3.hdf"}
DEV_SPLITS = {"train": "train", "val": "valid"}  # dev.csv's split column -> our split names
AUDIO_EXTENSIONS = (".wav", ".flac")
LAYOUTS = ("auto", "raw", "hdf5")
# The official counts: FSD50K.doc/README.md of the release ("Dev set: 40,966 audio clips", "Eval set: 10,231
# audio clips"; 51,197 in all). The train/val split of dev (36,796 / 4,170) is the paper's Sec. 3H. No hash of
# the official ground truth could be computed here (the full csvs are not available offline): counts only.
OFFICIAL_LIST = OfficialList(total=51_197, per_fold={}, sha256=None,
                             source="FSD50K release README: dev 40,966 + eval 10,231 clips")


def default_root() -> Path:
    """Where FSD50K is looked for in the audiobench cache."""
    return cache_subdir("datasets") / "fsd50k"


def _not_found(root: Path) -> DatasetError:
    found = sorted(p.name for p in root.iterdir())[:12] if root.is_dir() else []
    what = f"it contains {found}" if found else ("it is empty" if root.is_dir() else "it does not exist")
    return DatasetError(
        f"No FSD50K layout found in {root}: {what}.",
        hint=f"Expected either the raw Zenodo layout ({GROUND_TRUTH}/dev.csv, eval.csv, vocabulary.csv + "
             f"{AUDIO_DIRS['dev']}/ + {AUDIO_DIRS['eval']}/; download and unzip the parts from {HOMEPAGE}) or the "
             f"PaSST/EfficientAT HDF5 layout ({', '.join(HDF5_FILES.values())} + vocabulary.csv). "
             f"--download is not supported for FSD50K (about 30 GB in split zip archives).")


def detect_layout(root: Path) -> str:
    """``raw`` or ``hdf5``: which FSD50K layout ``root`` holds.

    Raw wins when its ground truth and an audio folder are there; the ground truth alone next to the .hdf
    files (kept for vocabulary.csv) is the HDF5 layout.
    """
    ground_truth = (root / GROUND_TRUTH / "dev.csv").is_file()
    if ground_truth and any((root / folder).is_dir() for folder in AUDIO_DIRS.values()):
        return "raw"
    if any((root / name).is_file() for name in HDF5_FILES.values()):
        return "hdf5"
    if ground_truth:
        return "raw"  # ground truth without audio: every clip is listed as missing
    raise _not_found(root)


def read_vocabulary(path: Path) -> tuple[list[str], dict[str, str]]:
    """Class names in index order and label -> mid, from the header-less ``vocabulary.csv`` (index,label,mid)."""
    if not path.is_file():
        raise DatasetError(f"FSD50K vocabulary {path} not found.",
                           hint=f"Take FSD50K.ground_truth/vocabulary.csv from {HOMEPAGE} (FSD50K.ground_truth.zip).")
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    labels, mids = [], {}
    for line, fields in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if not fields:
            continue
        if len(fields) != 3:
            raise DatasetError(f"{path}, row {line}: {len(fields)} fields, expected 3 (index,label,mid).",
                               hint="Restore the official vocabulary.csv.")
        index, label, mid = (f.strip() for f in fields)
        if not index.isdigit():
            raise DatasetError(f"{path}, row {line}, column 1 (index): {index!r} is not a class index"
                               + (" (the official file has no header row)." if line == 1 else "."),
                               hint="Restore the official vocabulary.csv: rows 'index,label,mid' without a header.")
        if int(index) != len(labels) or label in mids or not label:
            raise DatasetError(f"{path}, row {line}: class {index} {label!r} is out of order, empty or repeated "
                               f"(expected index {len(labels)}).", hint="Restore the official vocabulary.csv.")
        labels.append(label)
        mids[label] = mid
    if not labels:
        raise DatasetError(f"{path} is empty.", hint="Restore the official vocabulary.csv.")
    return labels, mids


def _labels(row: Row, index: dict[str, int], mids: dict[str, str]) -> tuple[int, ...]:
    """The class indices of a ground-truth row; every label must be in the vocabulary with its mid."""
    names = [name.strip() for name in row.text("labels").split(",")]
    given = [mid.strip() for mid in row.text("mids").split(",")]
    for name in names:
        if name not in index:
            raise DatasetError(f"{row.path}, row {row.line}, column 'labels': {name!r} is not in vocabulary.csv.",
                               hint="Restore the official ground truth, or the vocabulary.csv that goes with it.")
    if given != [mids[name] for name in names]:
        raise DatasetError(f"{row.path}, row {row.line}, column 'mids': {given} do not match the labels' mids "
                           f"in vocabulary.csv.", hint="Restore the official ground truth.")
    return tuple(sorted({index[name] for name in names}))


def _audio_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {path.stem: path for path in sorted(folder.iterdir())
            if path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file()}


def _load_raw(root: Path) -> DatasetIndex:
    truth = root / GROUND_TRUTH
    classes, mids = read_vocabulary(truth / "vocabulary.csv")
    index = {name: i for i, name in enumerate(classes)}
    listed: list[tuple[str, str, tuple[int, ...], str, str]] = []  # fname, where, labels, split, audio folder
    for row in read_table(truth / "dev.csv", ("fname", "labels", "mids", "split")):
        split = row.text("split")
        if split not in DEV_SPLITS:
            raise DatasetError(f"{row.path}, row {row.line}, column 'split': {split!r} is not train or val.",
                               hint="Restore the official dev.csv.")
        listed.append((row.text("fname"), f"dev.csv row {row.line}", _labels(row, index, mids),
                       DEV_SPLITS[split], "dev"))
    for row in read_table(truth / "eval.csv", ("fname", "labels", "mids")):
        listed.append((row.text("fname"), f"eval.csv row {row.line}", _labels(row, index, mids), "test", "eval"))
    check_unique(((fname, where, None, fname) for fname, where, _, _, _ in listed), truth)
    audio = {part: _audio_files(root / folder) for part, folder in AUDIO_DIRS.items()}
    clips, missing = [], []
    for fname, _, labels, split, part in listed:
        if fname in audio[part]:
            clips.append(Clip(clip_id=fname, path=audio[part][fname], label=labels, split=split))
        else:
            missing.append(fname)
    return DatasetIndex(name="fsd50k", classes=classes, clips=clips, missing=missing, official_list=OFFICIAL_LIST,
                        listed_sha256=list_sha256((f, labels, s) for f, _, labels, s, _ in listed))


def _load_hdf5(root: Path) -> DatasetIndex:
    vocabulary = next((p for p in (root / "vocabulary.csv", root / GROUND_TRUTH / "vocabulary.csv") if p.is_file()),
                      root / "vocabulary.csv")
    classes, _ = read_vocabulary(vocabulary)
    listed: list[tuple[str, str, tuple[int, ...], str]] = []
    clips, missing = [], []
    for split, name in HDF5_FILES.items():
        if not (root / name).is_file():
            raise DatasetError(f"FSD50K HDF5 file {root / name} not found (the layout has one file per split: "
                               f"{', '.join(HDF5_FILES.values())}).",
                               hint="Build the missing file with the PaSST fsd50k/prepare_scripts.")
        with open_hdf5(root / name) as reader:
            names, targets = reader.names(), reader.targets(len(classes))
            paths = materialise(reader)
        for row, audio_name in enumerate(names):
            fname, labels = Path(audio_name).stem, tuple(int(c) for c in targets[row].nonzero()[0])
            listed.append((fname, f"{name} row {row}", labels, split))
            if row in paths:
                clips.append(Clip(clip_id=fname, path=paths[row], label=labels, split=split))
            else:
                missing.append(fname)
    check_unique(((fname, where, None, fname) for fname, where, _, _ in listed), root)
    return DatasetIndex(name="fsd50k", classes=classes, clips=clips, missing=missing, official_list=OFFICIAL_LIST,
                        listed_sha256=list_sha256((f, labels, s) for f, _, labels, s in listed))


def load_fsd50k(data_dir: Path | None = None, download: bool = False, layout: str = "auto") -> DatasetIndex:
    """Index the FSD50K clips under ``data_dir`` (default: ``<cache>/datasets/fsd50k``) in the given layout.

    Listed clips without audio go to ``missing``; metadata errors name the file, the row and the column.
    """
    root = Path(data_dir).expanduser() if data_dir is not None else default_root()
    if layout not in LAYOUTS:
        raise DatasetError(f"Unknown FSD50K layout {layout!r}.", hint=f"Use one of {', '.join(LAYOUTS)}.")
    try:
        found = detect_layout(root)
    except DatasetError as error:
        if download:
            raise DatasetError("--download is not supported for FSD50K.", hint=error.hint) from None
        raise
    chosen = found if layout == "auto" else layout
    if chosen == "raw" and not (root / GROUND_TRUTH / "dev.csv").is_file():
        raise _not_found(root)
    return _load_raw(root) if chosen == "raw" else _load_hdf5(root)
