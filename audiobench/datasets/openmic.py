"""OpenMIC-2018 (Humphrey et al., ISMIR 2018): 20,000 ten-second excerpts, 20 instruments, partial labels.

Layout of the release (https://zenodo.org/record/1432913, ``openmic-2018-v1.0.0.tgz``):

* ``openmic-2018.npz``: ``Y_true`` ``[N, 20]`` soft scores (fraction of annotators saying "present"),
  ``Y_mask`` ``[N, 20]`` bool (the instrument was annotated for the clip), ``sample_key`` ``[N]`` object array;
* ``class-map.json``: instrument -> column index;
* ``partitions/split01_train.csv``, ``partitions/split01_test.csv``: one sample_key per line, no header
  (the official notebook reads them with ``header=None``);
* ``audio/<first 3 characters of the key>/<key>.ogg``.

A label is positive when ``Y_true > threshold`` (default 0.5, the rule of the PaSST/EfficientAT numbers;
the official baseline notebook uses ``>= 0.5``: ``inclusive=True``). Unannotated labels (``Y_mask`` False)
are unknown: ``Clip.mask`` is False there (the probe's BCE and the mAP give them weight 0), never positive.
Splits: ``train`` and ``test`` of split01 (no validation split).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from audiobench.cachedir import cache_subdir
from audiobench.datasets.base import Clip, DatasetIndex, OfficialList, check_unique, list_sha256
from audiobench.errors import DatasetError

HOMEPAGE = "https://zenodo.org/record/1432913"
NPZ = "openmic-2018.npz"
CLASS_MAP = "class-map.json"
PARTITIONS = {"train": "partitions/split01_train.csv", "test": "partitions/split01_test.csv"}
ARRAYS = ("Y_true", "Y_mask", "sample_key")
# Official counts: split01 has 14,915 train and 5,085 test keys (printed by the official notebook
# cosmir/openmic-2018 examples/modeling-baseline.ipynb; its copies of the partition files have these many lines).
# No hash of the official (key, labels, split) rows could be computed here (the npz is not available offline).
OFFICIAL_LIST = OfficialList(total=20_000, per_fold={}, sha256=None,
                             source="OpenMIC-2018 split01: 14,915 train + 5,085 test keys")


def default_root() -> Path:
    """Where OpenMIC-2018 is looked for in the audiobench cache."""
    return cache_subdir("datasets") / "openmic-2018"


def _missing_release(path: Path) -> DatasetError:
    return DatasetError(f"OpenMIC-2018 file {path} not found.",
                        hint=f"Point --data-dir at the unpacked openmic-2018 folder ({NPZ}, {CLASS_MAP}, partitions/, "
                             f"audio/); download openmic-2018-v1.0.0.tgz (2.6 GB) from {HOMEPAGE} and untar it. "
                             f"--download is not supported for OpenMIC-2018.")


def read_npz(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``Y_true`` ``[N, C]`` float, ``Y_mask`` ``[N, C]`` bool and the sample keys of the release's npz."""
    if not path.is_file():
        raise _missing_release(path)
    # allow_pickle is needed for this file only: sample_key is stored as a numpy object array (pickled
    # Python strings). The file comes from the dataset release the user chose to evaluate on.
    try:
        with np.load(path, allow_pickle=True) as data:
            missing = [name for name in ARRAYS if name not in data.files]
            if missing:
                raise DatasetError(f"{path} lacks the array(s) {', '.join(missing)}; it has {sorted(data.files)}.",
                                   hint=f"Restore {NPZ} from the OpenMIC-2018 release.")
            y_true, y_mask = np.asarray(data["Y_true"], dtype=np.float64), np.asarray(data["Y_mask"])
            keys = [str(key) for key in data["sample_key"]]
    except (OSError, ValueError) as error:
        raise DatasetError(f"{path} cannot be read as a numpy .npz file ({error}).",
                           hint=f"Restore {NPZ} from the OpenMIC-2018 release.") from None
    expected = (len(keys), num_classes)
    for name, array in (("Y_true", y_true), ("Y_mask", y_mask)):
        if array.shape != expected:
            raise DatasetError(f"{path}, array {name}: shape {array.shape}, expected {expected} "
                               f"({len(keys)} sample keys x {num_classes} classes of {CLASS_MAP}).",
                               hint=f"Restore {NPZ} and {CLASS_MAP} from the same release.")
    return y_true, y_mask.astype(bool), keys


def read_class_map(path: Path) -> list[str]:
    """Instrument names in column order, from ``class-map.json`` (instrument -> index)."""
    if not path.is_file():
        raise _missing_release(path)
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path} is not valid JSON ({error}).", hint=f"Restore {CLASS_MAP}.") from None
    if not isinstance(mapping, dict) or sorted(mapping.values()) != list(range(len(mapping))):
        raise DatasetError(f"{path} must map each instrument to a distinct column index 0..N-1.",
                           hint=f"Restore {CLASS_MAP} from the OpenMIC-2018 release.")
    return [name for name, _ in sorted(mapping.items(), key=lambda item: item[1])]


def read_partition(path: Path, known: dict[str, int]) -> list[tuple[str, int]]:
    """(sample key, line) of a partition file (one key per line, no header); unknown keys are errors."""
    if not path.is_file():
        raise _missing_release(path)
    rows = []
    for line, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        key = text.strip()
        if not key:
            continue
        if key not in known:
            hint = ("The official partition files have no header line." if line == 1 else
                    f"Restore the partition files and {NPZ} from the same release.")
            raise DatasetError(f"{path}, row {line}: sample key {key!r} is not in {NPZ}.", hint=hint)
        rows.append((key, line))
    return rows


def load_openmic(data_dir: Path | None = None, download: bool = False, threshold: float = 0.5,
                 inclusive: bool = False) -> DatasetIndex:
    """Index the OpenMIC-2018 split01 clips under ``data_dir`` (default: ``<cache>/datasets/openmic-2018``).

    A known label is positive when ``Y_true > threshold`` (``>=`` with ``inclusive``); unknown labels are
    masked. Listed clips without audio go to ``missing``.
    """
    root = Path(data_dir).expanduser() if data_dir is not None else default_root()
    if download and not (root / NPZ).is_file():
        raise DatasetError("--download is not supported for OpenMIC-2018.", hint=_missing_release(root / NPZ).hint)
    classes = read_class_map(root / CLASS_MAP)
    y_true, y_mask, keys = read_npz(root / NPZ, len(classes))
    row_of = {key: row for row, key in enumerate(keys)}
    positive = (y_true >= threshold) if inclusive else (y_true > threshold)
    positive &= y_mask
    listed = [(key, f"{path} row {line}", split)
              for split, path in PARTITIONS.items() for key, line in read_partition(root / path, row_of)]
    check_unique(((key, where, None, key) for key, where, _ in listed), root / "partitions")
    clips, missing, rows = [], [], []
    for key, _, split in listed:
        row = row_of[key]
        labels = tuple(int(c) for c in np.flatnonzero(positive[row]))
        rows.append((key, labels, split))
        audio = root / "audio" / key[:3] / f"{key}.ogg"
        if audio.is_file():
            clips.append(Clip(clip_id=key, path=audio, label=labels, split=split,
                              mask=tuple(bool(v) for v in y_mask[row])))
        else:
            missing.append(key)
    return DatasetIndex(name="openmic", classes=classes, clips=clips, missing=missing, clip_seconds=10.0,
                        official_list=OFFICIAL_LIST, listed_sha256=list_sha256(rows))
