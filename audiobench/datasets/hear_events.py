"""HEAR 2021 timestamp (event) tasks in the hear-preprocess format: DCASE 2016 task 2, MAESTRO 5h.

Same task directory as the scene tasks (see :mod:`audiobench.datasets.hear`), with ``embedding_type``
``event`` in ``task_metadata.json``; each split file maps a file name to its events, as hear-preprocess
``pipeline.py`` writes them (the records of the ``label``, ``start``, ``end`` columns, times in
milliseconds): ``{"a.wav": [{"label": "cough", "start": 1250.0, "end": 1830.5}, ...]}``. hear-eval-kit
``heareval/score.py`` divides ``start``/``end`` by 1000 before handing them to sed_eval; so do we.
Optional ``evaluation_params.event_postprocessing_grid`` (MAESTRO) overrides HEAR's default event
post-processing grid (hear-eval-kit ``task_predictions.py``: median filter 250 ms, minimum duration
{125, 250} ms).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import soundfile as sf

from audiobench.datasets.base import Clip, DatasetIndex, OfficialList, check_unique, list_sha256
from audiobench.datasets.hear import (FOLD_NAME, TASKS_PAGE, _read_split, audio_dir, read_vocabulary,
                                      versioned_name)
from audiobench.errors import AudiobenchError, DatasetError

#: HEAR event score names (hear-eval-kit ``heareval/score.py``) -> audiobench metrics (onset-only, micro F).
HEAR_EVENT_METRICS = {"event_onset_200ms_fms": "onset-fms-200ms", "event_onset_50ms_fms": "onset-fms-50ms"}
#: hear-eval-kit ``EVENT_POSTPROCESSING_GRID``: used when task_metadata.json has no grid of its own.
DEFAULT_GRID = {"median_filter_ms": [250], "min_duration": [125, 250]}
_HINT = "Restore the split file from the HEAR task archive."

Event = tuple[float, float, int]


def _number(path: Path, name: str, i: int, event: dict[str, Any], key: str) -> float:
    value = event.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise DatasetError(f"{path}, entry {name!r}, event {i}, key {key!r}: {value!r} is not a time in ms >= 0.",
                           hint=_HINT)
    return float(value)


def parse_events(path: Path, name: str, events: list[Any], index: dict[str, int]) -> tuple[Event, ...]:
    """The events of one split-file entry as sorted (onset s, offset s, class index)."""
    out = []
    for i, event in enumerate(events):
        if not isinstance(event, dict) or "label" not in event:
            raise DatasetError(f"{path}, entry {name!r}, event {i}: {event!r} is not an object with label, start "
                               f"and end.", hint=f"{_HINT} (event tasks list {{label, start, end}} per file)")
        label = str(event["label"])
        if label not in index:
            raise DatasetError(f"{path}, entry {name!r}, event {i}: label {label!r} is not in labelvocabulary.csv.",
                               hint="Restore the split file and labelvocabulary.csv from the same HEAR task archive.")
        start, end = (_number(path, name, i, event, key) for key in ("start", "end"))
        if end < start:
            raise DatasetError(f"{path}, entry {name!r}, event {i}: end {end} ms is before start {start} ms.",
                               hint=_HINT)
        out.append((start / 1000.0, end / 1000.0, index[label]))
    return tuple(sorted(out))


def _duration(wav: Path, metadata: dict[str, Any]) -> float | None:
    try:
        return float(sf.info(str(wav)).duration)
    except (RuntimeError, sf.LibsndfileError):
        seconds = metadata.get("sample_duration")
        return float(seconds) if seconds is not None else None


def load_hear_events(task_dir: Path, metadata: dict[str, Any], sample_rate: int | None = None,
                     clips: int | None = None) -> DatasetIndex:
    """Index a HEAR timestamp task: clips with ``events``, ``label`` (classes present) and ``duration``.

    ``duration`` is read from the audio header (``sample_duration`` of the metadata if the header cannot
    be read). K-fold tasks give clips a ``fold`` (0 for ``fold00``), train/valid/test tasks a ``split``;
    ``clips`` is the published clip count, checked as the official list.
    """
    classes = read_vocabulary(task_dir)
    index = {label: i for i, label in enumerate(classes)}
    kfold = metadata["split_mode"] != "trainvaltest"
    _, audio = audio_dir(task_dir, sample_rate)
    listed: list[tuple[str, tuple[Event, ...], str, Path]] = []
    for split in metadata["splits"]:
        path = task_dir / f"{split}.json"
        listed += [(name, parse_events(path, name, events, index), split, path)
                   for name, events in _read_split(path).items()]
    fold_of = {s: int(FOLD_NAME.fullmatch(s).group(1)) for s in metadata["splits"]} if kfold else {}
    check_unique(((name, f"{path.name} entry {name!r}", fold_of.get(split), Path(name).stem)
                  for name, _, split, path in listed), task_dir)
    found, missing, expected = [], [], {}
    for name, events, split, _ in listed:
        fold = fold_of.get(split)
        if fold is not None:
            expected[fold] = expected.get(fold, 0) + 1
        wav = audio / split / name
        if not wav.is_file():
            missing.append(name)
            continue
        found.append(Clip(clip_id=name, path=wav, label=tuple(sorted({c for _, _, c in events})), fold=fold,
                          split=None if kfold else split, duration=_duration(wav, metadata), events=events))
    official = None if clips is None else OfficialList(
        total=int(clips), per_fold={}, sha256=None, source=f"HEAR 2021 task table, {TASKS_PAGE}")
    return DatasetIndex(name=f"hear:{versioned_name(metadata)}", classes=classes, clips=found,
                        expected_per_fold=dict(sorted(expected.items())), missing=missing,
                        clip_seconds=None, official_list=official,
                        listed_sha256=list_sha256((n, [list(e) for e in events], s) for n, events, s, _ in listed))


def postprocessing_grid(metadata: dict[str, Any]) -> dict[str, Any]:
    """Card ``protocol_options`` for HEAR event post-processing: ``median_filter_ms`` (one value) and the
    ``min_duration_ms`` candidates, from the task's ``evaluation_params`` or HEAR's default grid."""
    grid = (metadata.get("evaluation_params") or {}).get("event_postprocessing_grid") or DEFAULT_GRID
    medians = list(grid.get("median_filter_ms", DEFAULT_GRID["median_filter_ms"]))
    if len(medians) != 1:
        raise DatasetError(f"task_metadata.json: event_postprocessing_grid.median_filter_ms must hold one value, "
                           f"not {medians}.", hint="Restore task_metadata.json from the HEAR task archive.")
    return {"median_filter_ms": medians[0],
            "min_duration_ms": list(grid.get("min_duration", DEFAULT_GRID["min_duration"]))}


def hear_event_card_data(task_dir: Path, metadata: dict[str, Any], clips: int | None) -> dict[str, Any]:
    """The fields of a task card for HEAR timestamp task ``task_dir`` (``--task hear:<path>``).

    Primary metric: HEAR's first ``evaluation`` score (onset F-measure, 200 or 50 ms collar); the other
    onset F-measure is added to ``metrics``; protocol ``frame-linear`` on whole clips.
    """
    scores = list(metadata["evaluation"])
    primary = HEAR_EVENT_METRICS.get(scores[0]) if scores else None
    if primary is None:
        raise AudiobenchError(f"{task_dir / 'task_metadata.json'}: the primary HEAR score {(scores or [None])[0]!r} "
                              f"has no audiobench metric.", hint=f"Supported: {', '.join(HEAR_EVENT_METRICS)}.")
    skipped = [score for score in scores if score not in HEAR_EVENT_METRICS]
    if metadata["split_mode"] == "trainvaltest":
        splits: dict[str, Any] = {"type": "fixed", "train": ["train"], "valid": ["valid"], "test": ["test"]}
    else:
        splits = {"type": "folds", "folds": sorted(int(FOLD_NAME.fullmatch(s).group(1)) for s in metadata["splits"])}
    name = versioned_name(metadata)
    return {
        "name": f"hear:{name}",
        "description": f"HEAR timestamp task {name} ({metadata['split_mode']}) from {task_dir}"
                       + (f"; HEAR scores without an audiobench metric: {', '.join(skipped)}" if skipped else ""),
        "dataset": "hear", "label_type": "events", "metric": primary,
        "metrics": [m for m in HEAR_EVENT_METRICS.values() if m != primary], "protocol": "frame-linear",
        "protocol_options": postprocessing_grid(metadata), "splits": splits, "clip_seconds": None,
        "dataset_options": {"root": str(task_dir), **({"clips": clips} if clips is not None else {})},
        "homepage": TASKS_PAGE,
    }
