"""ESC-50 (K. Piczak): 2000 five-second clips, 50 classes, 5 official folds.

Official layout: ``<root>/meta/esc50.csv`` and ``<root>/audio/<filename>.wav``. A lossless file with the
same stem and another extension (``.flac``, ...) is accepted, as is the PaSST ``audio_32k/`` folder.
"""

from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

from audiobench.cachedir import cache_subdir
from audiobench.datasets.base import Clip, DatasetIndex
from audiobench.download import ProgressCallback, download
from audiobench.errors import DatasetError

ARCHIVE_URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
ARCHIVE_ROOT = "ESC-50-master"  # top folder inside the archive
LOSSLESS_EXTENSIONS = (".wav", ".flac", ".aiff", ".aif", ".w64")
AUDIO_DIRS = ("audio", "audio_32k")
CLIP_SECONDS = 5.0


def default_root() -> Path:
    """Where a downloaded ESC-50 is kept in the audiobench cache."""
    return cache_subdir("datasets") / ARCHIVE_ROOT


def download_esc50(progress: ProgressCallback | None = None) -> Path:
    """Download and unpack the official archive into the cache (resumable; unpacked atomically)."""
    root = default_root()
    if (root / "meta" / "esc50.csv").is_file():
        return root
    archive = download(ARCHIVE_URL, cache_subdir("downloads") / "ESC-50-master.zip", progress=progress)
    staging = root.with_name(root.name + ".unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(staging)
    (staging / ARCHIVE_ROOT).rename(root)
    shutil.rmtree(staging, ignore_errors=True)
    return root


def _audio_files(root: Path) -> dict[str, Path]:
    """Map file stem -> path for every lossless audio file in the audio folders (first folder wins)."""
    found: dict[str, Path] = {}
    for folder in AUDIO_DIRS:
        directory = root / folder
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix.lower() in LOSSLESS_EXTENSIONS and path.stem not in found:
                found[path.stem] = path
    return found


def load_esc50(data_dir: Path | None = None, download: bool = False,
               progress: ProgressCallback | None = None) -> DatasetIndex:
    """Index the ESC-50 clips present under ``data_dir`` (default: the cache, downloading if asked)."""
    root = Path(data_dir).expanduser() if data_dir is not None else default_root()
    meta = root / "meta" / "esc50.csv"
    if not meta.is_file():
        if data_dir is None and download:
            root = download_esc50(progress)
            meta = root / "meta" / "esc50.csv"
        else:
            raise DatasetError(
                f"ESC-50 metadata {meta} not found.",
                hint=f"Point --data-dir at an ESC-50 folder (meta/esc50.csv + audio/), or pass --download "
                     f"to fetch {ARCHIVE_URL} into the cache.",
            )
    with open(meta, newline="") as handle:
        rows = list(csv.DictReader(handle))
    required = {"filename", "fold", "target", "category"}
    if not rows or not required <= set(rows[0]):
        raise DatasetError(f"{meta} is not the ESC-50 metadata (needs columns {sorted(required)}).")
    classes = [""] * (max(int(r["target"]) for r in rows) + 1)
    for row in rows:
        classes[int(row["target"])] = row["category"]
    audio = _audio_files(root)
    clips, missing, expected = [], [], {}
    for row in rows:
        fold = int(row["fold"])
        expected[fold] = expected.get(fold, 0) + 1
        stem = Path(row["filename"]).stem
        if stem in audio:
            clips.append(Clip(clip_id=row["filename"], path=audio[stem], label=int(row["target"]), fold=fold))
        else:
            missing.append(row["filename"])
    return DatasetIndex(name="esc50", classes=classes, clips=clips, expected_per_fold=dict(sorted(expected.items())),
                        missing=missing, clip_seconds=CLIP_SECONDS)
