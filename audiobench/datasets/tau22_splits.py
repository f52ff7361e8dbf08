"""TAU22 train/test lists: the DCASE23 ``evaluation_setup`` fold and the DCASE24 ``split<N>.csv`` subsets.

Two setups share the TAU Urban Acoustic Scenes 2022 Mobile development audio and ``meta.csv``:

* ``fold1`` (DCASE 2023 task 1 development evaluation, the default): train on
  ``evaluation_setup/fold1_train.csv``, test on ``evaluation_setup/fold1_evaluate.csv``.
* ``5``/``10``/``25``/``50``/``100`` (DCASE 2024 task 1 data-efficient subsets of that train fold):
  train on ``split<N>.csv``, test on ``test.csv``. These csvs are not in the Zenodo archive; the DCASE24
  baseline downloads them from :data:`SPLIT_CSV_URL` into ``split_setup/``.

Every list is tab-separated with a ``filename`` column (``audio/<name>.wav``); the DCASE baselines take
labels and devices from ``meta.csv`` and use the lists only to select files, and so does this module.
"""

from __future__ import annotations

from pathlib import Path

from audiobench.datasets.base import OfficialList
from audiobench.errors import DatasetError

SPLIT_CSV_URL = "https://github.com/CPJKU/dcase2024_task1_baseline/releases/download/files/"
SETUPS = ("fold1", "5", "10", "25", "50", "100")
SPLIT_DIRS = ("split_setup", ".")  # where split<N>.csv / test.csv are looked for, under the dataset root

# Official clip counts of the fold1 setup, from the "Training / test setup - Statistics" table of the dataset's
# README (TAU-urban-acoustic-scenes-2022-mobile-development.doc.zip, Zenodo record 6337421; the table is also
# reproduced in soundata's tau2022uas_mobile.py): train 139 620 segments, test 29 680 segments. The test
# count and its per-scene counts (2 960 airport and tram, 2 970 the others) agree with the DCASE24 test.csv
# checked below; the README's second table ("Number of segments in train / test setup") rounds to 139 650 /
# 29 700 and is not used. No hash of fold1_train/fold1_evaluate could be computed here (the evaluation_setup
# files are not available offline), so only the count identifies the fold1 list.
FOLD1_TRAIN_CLIPS = 139_620
TEST_CLIPS = 29_680
README_SOURCE = "TAU Urban Acoustic Scenes 2022 Mobile development README (Zenodo 6337421), train/test statistics"

# sha256 (audiobench.datasets.base.list_sha256 of (filename, scene index in TAU22_SCENES order, "train" or
# "test") rows) of split<N>.csv + test.csv as released with github.com/CPJKU/dcase2024_task1_baseline
# (release "files"); computed once from those real files (staged in the project's shared/data/tau22/
# split_setup), like a checksum. Row counts: split5 6 980, split10 13 960, split25 34 900, split50 69 800,
# test 29 680 (a 3 300, b 3 290, c 3 290, s1-s6 3 300 each).
SPLIT_ROWS = {"5": 6_980, "10": 13_960, "25": 34_900, "50": 69_800}
SPLIT_SHA256 = {
    "5": "899a9c31a9910aa977526b2141a529e4f922809ed2dbaef32ba2801e4d08b5b3",
    "10": "7f7d27cdb5984eaf769373a76810498fff432e6acf751bed4f05754c4fa191ef",
    "25": "3a60dcf75b58cb0f42db14533ddebd0415e4abef7146c46fb83489f75609d3b4",
    "50": "8d19e4f3d496fb477a77c54c3b40563412161f0b9a283579dde00b2c75047a83",
}
#: list_sha256 of test.csv alone (rows (filename, scene index, "test")), same source as SPLIT_SHA256.
TEST_CSV_SHA256 = "f4bcc7f6aeff400c308e57aa8d1d36beb577d59fa5a63c01620e81474fe99738"
SPLIT_SOURCE = "split{n}.csv + test.csv of github.com/CPJKU/dcase2024_task1_baseline release 'files'"


def normalise_setup(split: object) -> str:
    """``"fold1"`` or a percentage as text (``25`` and ``"25"`` are the same setup)."""
    text = str(split).strip().lower().rstrip("%")
    if text not in SETUPS:
        raise DatasetError(f"tau22: unknown split {split!r}.",
                           hint=f"Use one of {', '.join(SETUPS)} (fold1 = the DCASE23 development evaluation; "
                                f"a percentage = the DCASE24 split<N>.csv train subset, tested on test.csv).")
    return text


def official_list(setup: str) -> OfficialList:
    """The official clip list of a setup (train + test rows)."""
    if setup in SPLIT_SHA256:
        return OfficialList(total=SPLIT_ROWS[setup] + TEST_CLIPS, per_fold={}, sha256=SPLIT_SHA256[setup],
                            source=SPLIT_SOURCE.format(n=setup))
    # fold1 and split100 (= the DCASE23 train fold, per the DCASE24 baseline README): count only
    return OfficialList(total=FOLD1_TRAIN_CLIPS + TEST_CLIPS, per_fold={}, sha256=None, source=README_SOURCE)


def _find(root: Path, name: str) -> Path | None:
    for folder in SPLIT_DIRS:
        candidate = root / name if folder == "." else root / folder / name
        if candidate.is_file():
            return candidate
    return None


def list_files(root: Path, setup: str) -> dict[str, Path]:
    """The train and test list files of ``setup`` under ``root`` (``{"train": path, "test": path}``).

    A missing list is a :class:`DatasetError` that says where to get it and where to put it.
    """
    if setup == "fold1":
        names = {"train": "fold1_train.csv", "test": "fold1_evaluate.csv"}
        found = {role: root / "evaluation_setup" / name for role, name in names.items()}
        absent = [str(path) for path in found.values() if not path.is_file()]
        if absent:
            raise DatasetError(f"tau22: the fold1 list(s) {', '.join(absent)} not found.",
                               hint="Restore evaluation_setup/ from TAU-urban-acoustic-scenes-2022-mobile-development."
                                    "meta.zip (https://zenodo.org/record/6337421).")
        return found
    names = {"train": f"split{setup}.csv", "test": "test.csv"}
    found_or_none = {role: _find(root, name) for role, name in names.items()}
    absent = [names[role] for role, path in found_or_none.items() if path is None]
    if absent:
        urls = ", ".join(SPLIT_CSV_URL + name for name in absent)
        raise DatasetError(f"tau22: {' and '.join(absent)} not found under {root / 'split_setup'} or {root}.",
                           hint=f"The DCASE24 split lists are not part of the Zenodo archive: download {urls} "
                                f"and put them in {root / 'split_setup'}/ (or use split=fold1).")
    return {role: path for role, path in found_or_none.items() if path is not None}
