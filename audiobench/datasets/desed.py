"""DESED (DCASE task 4, domestic sound event detection): strong labels, 10 classes, 10 s clips.

Layout: the DESED_task recipe tree (recipes/dcase2022..2024_task4_baseline/confs/*.yaml ``data:`` paths),
under ``<data dir>``, ``<data dir>/dcase/dataset`` or ``<data dir>/data/dcase/dataset``::

    audio/validation/validation[_16k]/*.wav              test: the real validation set (1168 clips)
    metadata/validation/validation.tsv                    filename onset offset event_label
    metadata/validation/validation_durations.tsv          filename duration
    [dcase_synth/]audio/train/synthetic21_train/soundscapes[_16k]/*.wav   train: synthetic soundscapes
    [dcase_synth/]metadata/train/synthetic21_train/soundscapes.tsv        (2023+ recipes: under dcase_synth/)
    audio/train/strong_label_real[_16k]/*.wav + metadata/train/audioset_strong.tsv   (train="synthetic+strong-real")

``_16k`` folders hold the 16 kHz copies the recipes resample to; ``sample_rate=44100`` reads the originals.
A tsv row with empty onset, offset and label lists a clip without events. Real clips come from YouTube, so
missing audio is normal: the run then covers "N of 1168" test clips and is labelled non-official.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from audiobench.cachedir import cache_subdir
from audiobench.datasets.base import Clip, Coverage, DatasetIndex, OfficialList, list_sha256
from audiobench.errors import AudiobenchError, DatasetError
from audiobench.sed_io import check_no_overlaps, read_durations, read_events

#: The DESED classes in the fixed DCASE order (DESED_task local/classes_dict.py; protocols.md 4.7).
CLASSES = ("Alarm_bell_ringing", "Blender", "Cat", "Dishes", "Dog", "Electric_shaver_toothbrush", "Frying",
           "Running_water", "Speech", "Vacuum_cleaner")
SAMPLE_RATES = {16000: "_16k", 44100: ""}
TRAIN_SETS = ("synthetic", "synthetic+strong-real")
CLIP_SECONDS = 10.0
HOMEPAGE = "https://github.com/turpaultn/DESED"
RECIPE = "https://github.com/DCASE-REPO/DESED_task"
PREFIXES = ("", "dcase/dataset", "data/dcase/dataset")

#: The real validation set (metadata/validation/validation.tsv of DESED_task, staged in shared/data/desed):
#: 1168 clips, 4224 events + 15 rows of clips without events (4239 data rows). sha256 = list_sha256 of the
#: rows (filename, sorted events as (onset, offset, class index), "test"), so a re-annotated file
#: (e.g. the 2022 recipe's validation_old.tsv) is not the official list. Computed from that file (file
#: sha256 aa137f17...3871), checked against an independent csv-module computation.
OFFICIAL_TEST = OfficialList(
    total=1168, per_fold={}, sha256="505724cdeaafa15d5817d86698d739f1b61ab3da30b9ffee7ed7de29f1f8498c",
    source="metadata/validation/validation.tsv of DCASE-REPO/DESED_task (1168 clips)")
#: Published sizes of the training lists (protocols.md 4.7: synthetic21_train 10 000, strong_label_real 3 470).
OFFICIAL_TRAIN = {"synthetic21_train": 10_000, "strong_label_real": 3_470}


def layout_paths(base: Path, sample_rate: int = 16000, synth_dir: str = "") -> dict[str, Path]:
    """The folders and metadata files of a DESED tree rooted at ``base`` (``synth_dir``: "" or "dcase_synth")."""
    suffix = SAMPLE_RATES[sample_rate]
    synth = base / synth_dir if synth_dir else base
    return {
        "test_audio": base / "audio" / "validation" / f"validation{suffix}",
        "test_tsv": base / "metadata" / "validation" / "validation.tsv",
        "test_durations": base / "metadata" / "validation" / "validation_durations.tsv",
        "synthetic_audio": synth / "audio" / "train" / "synthetic21_train" / f"soundscapes{suffix}",
        "synthetic_tsv": synth / "metadata" / "train" / "synthetic21_train" / "soundscapes.tsv",
        "strong_audio": base / "audio" / "train" / f"strong_label_real{suffix}",
        "strong_tsv": base / "metadata" / "train" / "audioset_strong.tsv",
    }


@dataclass
class DesedIndex(DatasetIndex):
    """A DESED index whose coverage counts the test clips (the official list) and checks the training list."""

    train_lists: dict[str, int] = field(default_factory=dict)  # training list name -> clips listed
    missing_train: list[str] = field(default_factory=list)

    @property
    def expected_total(self) -> int:
        """Clips of the official test list."""
        return self.official_list.total if self.official_list else len(self.clips) + len(self.missing)

    def coverage(self) -> Coverage:
        """Official only when the test metadata is the pinned list, every test clip is present and each
        training list has its published size with every clip present."""
        reasons = []
        listed = sum(c.split == "test" for c in self.clips) + len(self.missing) - len(self.missing_train)
        if self.official_list and self.listed_sha256 != self.official_list.sha256:
            reasons.append(f"the test metadata lists {listed} clips and is not the official list of "
                           f"{self.official_list.total} ({self.official_list.source})")
        missing_test = len(self.missing) - len(self.missing_train)
        if missing_test:
            reasons.append(f"{missing_test} listed test clip(s) have no audio file")
        for name, count in self.train_lists.items():
            if count != OFFICIAL_TRAIN[name]:
                reasons.append(f"the {name} list has {count} clips, the published set {OFFICIAL_TRAIN[name]}")
        if self.missing_train:
            reasons.append(f"{len(self.missing_train)} listed training clip(s) have no audio file")
        present = sum(c.split == "test" for c in self.clips)
        return Coverage(official=not reasons, present=present, expected=self.expected_total,
                        missing=list(self.missing), reasons=reasons)


def _dataset_error(error: AudiobenchError) -> DatasetError:
    return DatasetError(str(error), hint=error.hint)


def _find_base(root: Path) -> Path:
    for prefix in PREFIXES:
        base = root / prefix if prefix else root
        if (base / "metadata" / "validation" / "validation.tsv").is_file():
            return base
    raise DatasetError(
        f"DESED metadata not found under {root} (looked for metadata/validation/validation.tsv there and under "
        f"{', '.join(p for p in PREFIXES if p)}).",
        hint=f"Build the DESED_task data tree ({RECIPE}, recipes/*_task4_baseline: generate_dcase_task4_*.py / "
             f"desed.download_audioset_data; data from {HOMEPAGE}) and pass its folder with --data-dir.")


def _audio_path(folder: Path, name: str) -> Path | None:
    path = folder / name
    return path if path.is_file() else None


def _read(path: Path, durations: set[str] | None = None):
    try:
        return read_events(path, labels=set(CLASSES), clips=durations)
    except AudiobenchError as error:
        raise _dataset_error(error) from None


def _events_by_clip(table) -> dict[str, tuple[tuple[float, float, int], ...]]:
    grouped: dict[str, list[tuple[float, float, int]]] = {name: [] for name in sorted(table.clips)}
    for name, onset, offset, label in table.events[["filename", "onset", "offset", "event_label"]].itertuples(
            index=False):
        grouped[name].append((float(onset), float(offset), CLASSES.index(label)))
    return {name: tuple(sorted(events)) for name, events in grouped.items()}


def _file_seconds(path: Path) -> float:
    """Length of an audio file from its header (training lists come without a durations file)."""
    try:
        return float(sf.info(str(path)).duration)
    except (RuntimeError, sf.LibsndfileError) as error:
        raise DatasetError(f"{path} is not a readable audio file ({error}).",
                           hint="Replace it with the clip's audio file, or remove it (it is then listed as missing).")


def _clip(clip_id: str, path: Path, events: tuple, split: str, duration: float | None) -> Clip:
    return Clip(clip_id=clip_id, path=path, label=tuple(sorted({e[2] for e in events})), split=split,
                duration=duration if duration is not None else _file_seconds(path), events=events)


def _train_lists(base: Path, sample_rate: int, train: str) -> list[tuple[str, Path, Path]]:
    """(list name, tsv, audio folder) of each training list; the synthetic set may sit under dcase_synth/."""
    synth = next((layout_paths(base, sample_rate, d) for d in ("", "dcase_synth")
                  if layout_paths(base, sample_rate, d)["synthetic_tsv"].is_file()), None)
    if synth is None:
        flat = layout_paths(base, sample_rate)["synthetic_tsv"]
        raise DatasetError(f"DESED training metadata {flat} not found (nor under {base / 'dcase_synth'}).",
                           hint=f"Generate the synthetic21_train soundscapes with the DESED_task recipe ({RECIPE}).")
    lists = [("synthetic21_train", synth["synthetic_tsv"], synth["synthetic_audio"])]
    if train == "synthetic+strong-real":
        paths = layout_paths(base, sample_rate)
        if not paths["strong_tsv"].is_file():
            raise DatasetError(f"DESED strong-label metadata {paths['strong_tsv']} not found.",
                               hint="Download audioset_strong.tsv (DESED_task generate_dcase_task4_2022.py "
                                    "--only_strong) or use train: synthetic.")
        lists.append(("strong_label_real", paths["strong_tsv"], paths["strong_audio"]))
    return lists


def load_desed(data_dir: Path | None = None, download: bool = False, sample_rate: int = 16000,
               train: str = "synthetic") -> DesedIndex:
    """Index DESED: train = synthetic soundscapes (plus the real strong-label clips when asked), test = the
    real validation set. Metadata errors name the file and the row; missing audio goes to ``missing``."""
    if sample_rate not in SAMPLE_RATES:
        raise DatasetError(f"DESED sample_rate {sample_rate!r} is not available.",
                           hint=f"Use one of {sorted(SAMPLE_RATES)} (the _16k folders or the 44.1 kHz originals).")
    if train not in TRAIN_SETS:
        raise DatasetError(f"DESED train set {train!r} is unknown.", hint=f"Use one of {', '.join(TRAIN_SETS)}.")
    root = Path(data_dir).expanduser() if data_dir is not None else cache_subdir("datasets") / "desed"
    if download and not _has_metadata(root):
        raise DatasetError("--download is not supported for DESED (YouTube clips, a generated synthetic set).",
                           hint=f"Build the DESED_task data tree ({RECIPE}) and put it in {root} or pass --data-dir.")
    base = _find_base(root)
    paths = layout_paths(base, sample_rate)
    try:
        lengths = read_durations(paths["test_durations"])
    except AudiobenchError as error:
        raise _dataset_error(error) from None
    duration = dict(zip(lengths["filename"], lengths["duration"].astype(float)))
    truth = _read(paths["test_tsv"], set(duration))
    unlisted = sorted(truth.clips - set(duration))
    if unlisted:
        raise DatasetError(f"{paths['test_tsv']}: clip {unlisted[0]!r} is not in {paths['test_durations']} "
                           f"({len(unlisted)} clip(s) without duration).",
                           hint="Use the durations file of the same validation set.")
    try:
        check_no_overlaps(truth.events, paths["test_tsv"])
    except AudiobenchError as error:
        raise _dataset_error(error) from None
    test_events = _events_by_clip(truth)
    clips, missing, missing_train, counts = [], [], [], {}
    for name, events in test_events.items():
        path = _audio_path(paths["test_audio"], name)
        if path is None:
            missing.append(name)
        else:
            clips.append(_clip(name, path, events, "test", duration[name]))
    for list_name, tsv, folder in _train_lists(base, sample_rate, train):
        listed = _events_by_clip(_read(tsv))
        leaked = sorted(set(listed) & set(test_events))
        if leaked:
            warnings.warn(f"{tsv}: {len(leaked)} clip(s) are also test clips (e.g. {leaked[0]!r}); they are left "
                          f"out of training.", stacklevel=2)
        counts[list_name] = len(listed)
        for name in sorted(set(listed) - set(leaked)):
            clip_id = f"{list_name}/{name}"
            path = _audio_path(folder, name)
            if path is None:
                missing.append(clip_id)
                missing_train.append(clip_id)
            else:
                clips.append(_clip(clip_id, path, listed[name], "train", None))
    return DesedIndex(name="desed", classes=list(CLASSES), clips=clips, missing=missing, clip_seconds=CLIP_SECONDS,
                      official_list=OFFICIAL_TEST, train_lists=counts, missing_train=missing_train,
                      listed_sha256=validation_list_sha256(test_events))


def validation_list_sha256(test_events: dict[str, tuple[tuple[float, float, int], ...]]) -> str:
    """The identity of a validation list: :func:`list_sha256` of (filename, events, "test") rows."""
    return list_sha256((name, events, "test") for name, events in test_events.items())




def _has_metadata(root: Path) -> bool:
    return any(((root / p) if p else root).joinpath("metadata", "validation", "validation.tsv").is_file()
               for p in PREFIXES)
