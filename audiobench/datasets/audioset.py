"""AudioSet (Gemmeke et al., ICASSP 2017): 527 classes, 10 s YouTube segments, multi-label.

Splits: ``train`` = the balanced train list (``train="balanced"``) or balanced + unbalanced
(``train="full"``), ``test`` = the eval list. Two layouts under the data folder:

* ``raw``: the official segment lists ``{balanced_train,unbalanced_train,eval}_segments.csv`` and
  ``class_labels_indices.csv`` (in the folder or its ``metadata/``), audio in
  ``audio/<list name>/`` or ``audios/<list name>/`` (searched recursively, e.g. the PANNs
  ``unbalanced_train_segments_partNN/`` folders; the Hugging Face ``bal_train``/``unbal_train``/``eval``
  names are accepted too) or flat in ``audio/``. File names verified in public tools:
  ``Y<ytid>.wav`` (PANNs download script), ``Y<ytid>.mp3`` (PaSST mp3 conversion), ``Y<ytid>_<start>_<end>.wav``
  (DCASE 2017 task 4 / DESED, e.g. ``YKK227gPpRn4_30.000_40.000.wav``), ``<ytid>_<start>_<end>.wav``,
  ``<ytid>_<start>.wav`` and ``<ytid>.flac`` (Hugging Face agkphysics/AudioSet). A name with a start time
  must match the row's start. Any of .wav/.flac/.mp3/.ogg/.aiff; a file that is empty or does not decode
  counts as missing (a clip is present only if it decodes).
* ``hdf5``: the PaSST/EfficientAT files ``{balanced_train,unbalanced_train,eval}_segments_mp3.hdf``
  (EAT's README spells them ``segmenets``; both are accepted), in the folder or its ``mp3/``.

AudioSet is never complete (videos are taken down), so the official list is the eval list and a run
reports "N of M clips" of it; train clips that are missing are counted in the manifest.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from audiobench.cachedir import cache_subdir
from audiobench.datasets.audioset_csv import ClassList, Segment, read_class_list, read_segments
from audiobench.datasets.base import Clip, Coverage, DatasetIndex, OfficialList, check_unique, list_sha256
from audiobench.errors import DatasetError

#: The official eval list: ``eval_segments.csv`` of AudioSet v1 (storage.googleapis.com/us_audioset/
#: youtube_corpus/v1/csv/), whose header line reads ``num_ytids=20371, num_segs=20371, num_unique_labels=527``;
#: the Hugging Face copy agkphysics/AudioSet also says "20371 originally". (The AudioSet web page's
#: "20,383 segments" is not the row count of the released csv.) No hash is pinned: the csv is not available here.
OFFICIAL_LIST = OfficialList(total=20371, per_fold={}, sha256=None,
                             source="eval_segments.csv of AudioSet v1 (header: num_segs=20371)")
EVAL_LIST = "eval_segments"
TRAIN_LISTS = {"balanced": ("balanced_train_segments",),
               "full": ("balanced_train_segments", "unbalanced_train_segments"),
               "none": ()}  # the eval list only (scoring a pretrained 527-class head needs no training clip)
LAYOUTS = ("auto", "raw", "hdf5")
CLIP_SECONDS = 10.0
CSV_URL = "http://storage.googleapis.com/us_audioset/youtube_corpus/v1/csv/"
HOMEPAGE = "https://research.google.com/audioset/download.html"
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")
HF_FOLDERS = {"balanced_train_segments": "bal_train", "unbalanced_train_segments": "unbal_train",
              "eval_segments": "eval"}
FILE_NAME = re.compile(r"Y?(?P<ytid>[A-Za-z0-9_-]{11})(?:_(?P<start>\d+(?:\.\d*)?)(?:_\d+(?:\.\d*)?)?)?")
LAYOUT_HINT = (f"Expected either the raw layout (eval_segments.csv, balanced_train_segments.csv, "
               f"class_labels_indices.csv from {CSV_URL} + audio/<list name>/Y<ytid>.wav) or the PaSST HDF5 "
               f"layout (eval_segments_mp3.hdf, balanced_train_segments_mp3.hdf); see {HOMEPAGE}.")


@dataclass
class AudioSetIndex(DatasetIndex):
    """An AudioSet index whose coverage is that of the official eval list (train lists are counted apart)."""

    eval_listed: int | None = None  # rows of the eval list read (None: no eval csv to compare with)
    train_listed: int | None = None
    train_missing: int = 0
    layout: str = "raw"

    def coverage(self) -> Coverage:
        """Official only when the eval list read is the official one and every clip of it is present."""
        present = sum(1 for clip in self.clips if clip.split == "test")
        total = OFFICIAL_LIST.total
        reasons = ["AudioSet is never complete (YouTube takedowns)"] if present < total else []
        if self.eval_listed is None:
            reasons.append("no eval_segments.csv to name the missing eval clips")
        elif self.eval_listed != total:
            reasons.append(f"the eval list read has {self.eval_listed} rows, the official list {total} "
                           f"({OFFICIAL_LIST.source})")
        if self.missing:
            reasons.append(f"{len(self.missing)} listed eval clip(s) have no audio")
        return Coverage(official=not reasons, present=present, expected=total, missing=list(self.missing),
                        reasons=reasons)

    def manifest(self, show_missing: int = 50) -> dict[str, object]:
        """The base manifest plus the eval/train counts and the layout."""
        train = sum(1 for clip in self.clips if clip.split == "train")
        return {**super().manifest(show_missing), "layout": self.layout,
                "eval_clips": len(self.clips) - train, "eval_listed": self.eval_listed,
                "train_clips": train, "train_listed": self.train_listed, "train_missing_count": self.train_missing}


def default_root() -> Path:
    """Where AudioSet is looked for without ``--data-dir``."""
    return cache_subdir("datasets") / "audioset"


def _first_file(candidates: list[Path]) -> Path | None:
    return next((path for path in candidates if path.is_file()), None)


def find_class_list(root: Path) -> Path:
    """``class_labels_indices.csv`` in the data folder, its ``metadata/``, or the audiobench label cache."""
    from audiobench.labels import LABEL_SETS

    info = LABEL_SETS["audioset"]
    cached = cache_subdir("labels") / f"audioset_{info.file_name}"
    candidates = [root / "class_labels_indices.csv", root / "metadata" / "class_labels_indices.csv", cached]
    found = _first_file(candidates)
    if found is None:
        raise DatasetError(f"AudioSet class list class_labels_indices.csv not found (looked in "
                           f"{', '.join(str(p) for p in candidates)}).",
                           hint=f"Download {info.url} into {root} or to {cached}.")
    return found


def find_segment_list(root: Path, name: str) -> Path | None:
    """The official segment list ``<name>.csv`` in the data folder or its ``metadata/``."""
    return _first_file([root / f"{name}.csv", root / "metadata" / f"{name}.csv"])


def hdf5_file(root: Path, name: str) -> Path | None:
    """PaSST file ``<name>_mp3.hdf`` (or EAT's misspelt ``..._segmenets_mp3.hdf``) in ``root`` or ``root/mp3``."""
    names = (f"{name}_mp3.hdf", f"{name.replace('_segments', '_segmenets')}_mp3.hdf")
    return _first_file([folder / file for folder in (root, root / "mp3") for file in names])


def _scan(folder: Path, recursive: bool) -> dict[str, list[tuple[float | None, Path]]]:
    """YouTube id -> [(start from the name or None, path)] of the non-empty audio files in ``folder``."""
    found: dict[str, list[tuple[float | None, Path]]] = {}
    walk = os.walk(folder) if recursive else [(str(folder), [], os.listdir(folder))]
    for directory, _, names in walk:
        for name in sorted(names):
            path = Path(directory) / name
            match = FILE_NAME.fullmatch(path.stem)
            if path.suffix.lower() not in AUDIO_EXTENSIONS or match is None:
                continue
            if path.is_file() and path.stat().st_size > 0:
                start = float(match["start"]) if match["start"] else None
                found.setdefault(match["ytid"], []).append((start, path))
    for entries in found.values():
        entries.sort(key=lambda item: (AUDIO_EXTENSIONS.index(item[1].suffix.lower()), str(item[1])))
    return found


def decodes(path: Path) -> bool:
    """Whether the decoder reads the file's header and finds samples (YouTube downloads are often broken);
    a clip that does not decode counts as missing, not as present."""
    try:
        return sf.info(str(path)).frames > 0
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError):
        return False


def _audio_folders(root: Path, name: str) -> list[Path]:
    return [root / top / sub for top in ("audio", "audios") for sub in (name, HF_FOLDERS[name])] + [root / name]


def _match(files: list[dict[str, list[tuple[float | None, Path]]]], segment: Segment) -> Path | None:
    for found in files:
        for start, path in found.get(segment.ytid, []):
            if start is None or abs(start - segment.start) < 1e-3:
                return path
    return None


def _load_raw(root: Path, classes: ClassList, train_lists: tuple[str, ...]) -> AudioSetIndex:
    """Index the raw layout: segment lists + audio files named by YouTube id."""
    flat = [_scan(root / top, recursive=False) for top in ("audio", "audios") if (root / top).is_dir()]
    listed: list[tuple[str, Segment, str, str]] = []  # (list name, segment, split, where)
    for name, split in [*((n, "train") for n in train_lists), (EVAL_LIST, "test")]:
        path = find_segment_list(root, name)
        if path is None:
            raise DatasetError(f"AudioSet segment list {name}.csv not found in {root} or {root / 'metadata'}.",
                               hint=f"Download it from {CSV_URL}{name}.csv. {LAYOUT_HINT}")
        listed += [(name, s, split, f"{path.name} row {s.line}") for s in read_segments(path, classes)]
    check_unique(((s.ytid, where, None, s.ytid) for _, s, _, where in listed), root)
    clips, missing, train_missing = [], [], 0
    scanned: dict[str, list] = {}
    for name, segment, split, _ in listed:
        if name not in scanned:
            scanned[name] = [_scan(folder, recursive=True) for folder in _audio_folders(root, name)
                             if folder.is_dir()] + flat
        path = _match(scanned[name], segment)
        if path is not None and decodes(path):
            clips.append(Clip(clip_id=segment.ytid, path=path, label=segment.labels, split=split,
                              duration=segment.end - segment.start))
        elif split == "test":
            missing.append(segment.ytid)
        else:
            train_missing += 1
    return AudioSetIndex(
        name="audioset", classes=classes.names, clips=clips, missing=missing, clip_seconds=CLIP_SECONDS,
        official_list=OFFICIAL_LIST, listed_sha256=list_sha256((s.ytid, s.labels, sp) for _, s, sp, _ in listed),
        eval_listed=sum(1 for _, _, split, _ in listed if split == "test"),
        train_listed=sum(1 for _, _, split, _ in listed if split == "train"), train_missing=train_missing,
        layout="raw")


def _hdf5_rows(path: Path, classes: ClassList) -> list[tuple[str, tuple[int, ...], Path | None, str]]:
    """(YouTube id, class indices, materialised mp3 or None when the row has no bytes, where) of every row."""
    from audiobench.datasets.hdf5_layout import materialise, open_hdf5

    with open_hdf5(path) as reader:
        names, targets = reader.names(), reader.targets(len(classes.names))
        paths = materialise(reader)
    rows = []
    for row, name in enumerate(names):
        match = FILE_NAME.fullmatch(Path(name).stem)
        if match is None:
            raise DatasetError(f"{path}, dataset audio_name, row {row}: {name!r} is not named by a YouTube id "
                               f"(Y<11-character id>.mp3).", hint="Rebuild the file with the PaSST prepare scripts.")
        rows.append((match["ytid"], tuple(int(c) for c in np.flatnonzero(targets[row])), paths.get(row),
                     f"{path.name} row {row}"))
    return rows


def _load_hdf5(root: Path, classes: ClassList, train_lists: tuple[str, ...]) -> AudioSetIndex:
    """Index the PaSST HDF5 layout; the eval csv, when present, names the eval clips absent from the file."""
    listed: list[tuple[str, tuple[int, ...], Path | None, str, str]] = []
    for name, split in [*((n, "train") for n in train_lists), (EVAL_LIST, "test")]:
        path = hdf5_file(root, name)
        if path is None:
            raise DatasetError(f"AudioSet HDF5 file {name}_mp3.hdf not found in {root} or {root / 'mp3'}.",
                               hint=LAYOUT_HINT)
        listed += [(ytid, labels, audio, where, split) for ytid, labels, audio, where in _hdf5_rows(path, classes)]
    check_unique(((ytid, where, None, ytid) for ytid, _, _, where, _ in listed), root)
    clips = [Clip(clip_id=ytid, path=audio, label=labels, split=split, duration=CLIP_SECONDS)
             for ytid, labels, audio, _, split in listed if audio is not None and decodes(audio)]
    present = {clip.clip_id for clip in clips if clip.split == "test"}
    eval_csv = find_segment_list(root, EVAL_LIST)
    eval_ids = [s.ytid for s in read_segments(eval_csv, classes)] if eval_csv is not None else None
    in_file = [ytid for ytid, _, _, _, split in listed if split == "test"]
    missing = [y for y in (eval_ids if eval_ids is not None else in_file) if y not in present]
    return AudioSetIndex(
        name="audioset", classes=classes.names, clips=clips, missing=missing, clip_seconds=CLIP_SECONDS,
        official_list=OFFICIAL_LIST, listed_sha256=list_sha256((y, lab, sp) for y, lab, _, _, sp in listed),
        eval_listed=len(eval_ids) if eval_ids is not None else None,
        train_listed=sum(1 for *_, split in listed if split == "train"),
        train_missing=sum(1 for _, _, audio, _, split in listed if split == "train" and audio is None),
        layout="hdf5")


def load_audioset(data_dir: Path | None = None, download: bool = False, layout: str = "auto",
                  train: str = "balanced") -> AudioSetIndex:
    """Index the AudioSet clips present under ``data_dir`` (raw or HDF5 layout, see the module docstring).

    ``train``: ``"balanced"`` (22k clips), ``"full"`` (balanced + unbalanced, ~2 M clips) or ``"none"`` (the
    eval list only, e.g. to score a model's own AudioSet head). Missing clips
    are listed, not errors; the run is then non-official with "N of M clips" of the eval list.
    """
    if train not in TRAIN_LISTS:
        raise DatasetError(f"AudioSet option train={train!r} is not one of {', '.join(TRAIN_LISTS)}.",
                           hint="Use train: balanced (the balanced train list), full (balanced + unbalanced) or none.")
    if layout not in LAYOUTS:
        raise DatasetError(f"AudioSet option layout={layout!r} is not one of {', '.join(LAYOUTS)}.",
                           hint=LAYOUT_HINT)
    root = Path(data_dir).expanduser() if data_dir is not None else default_root()
    if not root.is_dir():
        also = " (--download is not supported: the audio is on YouTube)" if download else ""
        raise DatasetError(f"AudioSet folder {root} does not exist{also}.",
                           hint=f"Download the segment lists from {CSV_URL}, the audio with a tool such as the "
                                f"PANNs download script, and point --data-dir at the folder. {LAYOUT_HINT}")
    chosen = layout if layout != "auto" else ("hdf5" if hdf5_file(root, EVAL_LIST) else "raw")
    classes = read_class_list(find_class_list(root))
    if chosen == "hdf5":
        return _load_hdf5(root, classes, TRAIN_LISTS[train])
    return _load_raw(root, classes, TRAIN_LISTS[train])
