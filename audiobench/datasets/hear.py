"""HEAR 2021 tasks in the hear-preprocess format (scene tasks; timestamp tasks: :mod:`.hear_events`).

A task directory (``<task_name>-<version>-<mode>``, e.g. ``esc50-v2.0.0-full``) holds
``task_metadata.json`` (the hear-preprocess task config: ``task_name``, ``version``, ``mode``,
``embedding_type`` scene|event, ``prediction_type`` multiclass|multilabel, ``split_mode``
trainvaltest|presplit_kfold|new_split_kfold, ``splits`` (``train``/``valid``/``test`` or
``fold00``..), ``sample_duration``, ``evaluation`` (HEAR score names, the first one selects models)),
``labelvocabulary.csv`` (``idx,label``), one ``<split>.json`` per split (file name -> list of labels)
and the audio as ``<sample_rate>/<split>/<file name>`` (mono wav). The Zenodo archives unpack to
``hear-<release>/tasks/<task dir>/``. See hear-preprocess ``pipeline.py`` and hear-eval-kit
``heareval/predictions/task_predictions.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from audiobench.cachedir import cache_subdir
from audiobench.datasets.base import Clip, DatasetIndex, OfficialList, check_unique, list_sha256
from audiobench.datasets.table import read_table
from audiobench.errors import AudiobenchError, DatasetError

ZENODO_URL = "https://zenodo.org/record/5887964"  # HEAR 2021 tasks at 48 kHz (protocols.md §4.8)
TASKS_PAGE = "https://hearbenchmark.com/hear-tasks.html"
FOLD_NAME = re.compile(r"fold(\d+)")
#: HEAR score names (hear-eval-kit ``heareval/score.py``) -> audiobench metrics. ``chroma_acc`` (pitch
#: class accuracy, octave errors forgiven) has no audiobench metric; ``top1_acc`` of a multi-label task
#: (argmax of the targets) neither.
HEAR_METRICS = {"top1_acc": "accuracy", "pitch_acc": "accuracy", "mAP": "mAP-hear", "d_prime": "d-prime",
                "aucroc": "aucroc"}
LAYOUT = ("a HEAR task directory: task_metadata.json, labelvocabulary.csv, <split>.json per split and "
          "<sample_rate>/<split>/<file>.wav")


def _candidates(base: Path, task: str | None) -> list[Path]:
    if task is None:
        return [base]
    return [base, base / task, base / "tasks" / task, *sorted(base.glob(f"*/tasks/{task}"))]


def find_task_dir(data_dir: Path | None, task: str | None = None, root: str | Path | None = None) -> Path:
    """The task directory: ``root`` if given, else ``data_dir`` (or the cache) itself, ``<it>/<task>``,
    ``<it>/tasks/<task>`` or ``<it>/hear-*/tasks/<task>`` — the first holding ``task_metadata.json``."""
    base = Path(root).expanduser() if root is not None else (
        Path(data_dir).expanduser() if data_dir is not None else cache_subdir("datasets") / "hear")
    for candidate in _candidates(base, None if root is not None else task):
        if (candidate / "task_metadata.json").is_file():
            return candidate
    what = f"HEAR task {task!r}" if task and root is None else "A HEAR task"
    archive = f" (archive hear2021-{task}-48000.tar.gz)" if task else ""
    raise DatasetError(f"{what} was not found: no task_metadata.json in {base}"
                       + (f" nor in {base}/[tasks/]{task}" if task and root is None else "") + ".",
                       hint=f"Download the task{archive} from {ZENODO_URL} (48 kHz; other rates from "
                            f"gs://hear2021-archive/tasks/), unpack it and point --data-dir at the task directory "
                            f"or the folder holding it; expected layout: {LAYOUT}.")


def read_task_metadata(task_dir: Path) -> dict[str, Any]:
    """``task_metadata.json`` checked for the keys audiobench uses (scene or event tasks)."""
    path = task_dir / "task_metadata.json"
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path} cannot be read as JSON ({error}).",
                           hint="Restore task_metadata.json from the HEAR task archive.") from None
    if not isinstance(metadata, dict):
        raise DatasetError(f"{path} is not a JSON object.", hint="Restore it from the HEAR task archive.")
    missing = [k for k in ("task_name", "embedding_type", "prediction_type", "split_mode", "splits", "evaluation")
               if k not in metadata]
    if missing:
        raise DatasetError(f"{path} lacks the key(s) {', '.join(missing)}.",
                           hint="Restore task_metadata.json from the HEAR task archive (hear-preprocess output).")
    if metadata["embedding_type"] not in ("scene", "event"):
        raise DatasetError(f"{path}: embedding_type {metadata['embedding_type']!r} is neither scene nor event.",
                           hint="Restore task_metadata.json from the HEAR task archive.")
    if metadata["prediction_type"] not in ("multiclass", "multilabel"):
        raise DatasetError(f"{path}: prediction_type {metadata['prediction_type']!r} is neither multiclass nor "
                           f"multilabel.", hint="Restore task_metadata.json from the HEAR task archive.")
    splits = metadata["splits"]
    if not isinstance(splits, list) or not splits or not all(isinstance(s, str) for s in splits):
        raise DatasetError(f"{path}: splits must be a list of split names, not {splits!r}.",
                           hint="Restore task_metadata.json from the HEAR task archive.")
    kfold = metadata["split_mode"] != "trainvaltest"
    if kfold and not all(FOLD_NAME.fullmatch(s) for s in splits):
        raise DatasetError(f"{path}: split_mode {metadata['split_mode']!r} needs folds named fold00, fold01, ...; "
                           f"got {splits}.", hint="Restore task_metadata.json from the HEAR task archive.")
    return metadata


def versioned_name(metadata: dict[str, Any]) -> str:
    """``<task_name>-<version>-<mode>``: the task directory's name as hear-preprocess writes it."""
    return "-".join(str(metadata[k]) for k in ("task_name", "version", "mode") if k in metadata)


def audio_dir(task_dir: Path, sample_rate: int | None = None) -> tuple[int, Path]:
    """The requested sample-rate folder, or the highest one present."""
    rates = sorted(int(p.name) for p in task_dir.iterdir() if p.is_dir() and p.name.isdigit())
    if sample_rate is not None and int(sample_rate) not in rates or not rates:
        wanted = f"the {sample_rate} Hz audio folder" if sample_rate is not None else "an audio folder"
        raise DatasetError(f"{task_dir} has no {wanted} (sample-rate folders present: {rates or 'none'}).",
                           hint=f"Unpack the task's audio archive next to task_metadata.json; expected: {LAYOUT}.")
    rate = int(sample_rate) if sample_rate is not None else rates[-1]
    return rate, task_dir / str(rate)


def read_vocabulary(task_dir: Path) -> list[str]:
    """Class names in index order from ``labelvocabulary.csv`` (indices must be 0..C-1, each once)."""
    path = task_dir / "labelvocabulary.csv"
    if not path.is_file():
        raise DatasetError(f"{path} not found.", hint=f"Restore it from the HEAR task archive; expected: {LAYOUT}.")
    rows = read_table(path, ("idx", "label"))
    classes: dict[int, str] = {}
    for row in rows:
        idx = row.integer("idx", 0, len(rows) - 1)
        if idx in classes:
            raise DatasetError(f"{path}, row {row.line}, column 'idx': index {idx} is listed twice.",
                               hint="Each class index may appear once; restore the file from the archive.")
        classes[idx] = row.text("label")
    return [classes[i] for i in range(len(rows))]


def _read_split(path: Path) -> dict[str, list[Any]]:
    if not path.is_file():
        raise DatasetError(f"{path} not found (the split is named in task_metadata.json).",
                           hint="Restore the split file from the HEAR task archive.")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path} cannot be read as JSON ({error}).",
                           hint="Restore the split file from the HEAR task archive.") from None
    if not isinstance(entries, dict):
        raise DatasetError(f"{path} is not a JSON object mapping file names to label lists.",
                           hint="Restore the split file from the HEAR task archive.")
    for name, labels in entries.items():
        if not isinstance(labels, list):
            raise DatasetError(f"{path}, entry {name!r}: the labels must be a list, not {labels!r}.",
                               hint="Restore the split file from the HEAR task archive.")
    return entries


def _label(path: Path, name: str, labels: list[Any], index: dict[str, int], multilabel: bool) -> int | tuple[int, ...]:
    unknown = [label for label in labels if str(label) not in index]
    if unknown:
        raise DatasetError(f"{path}, entry {name!r}: label {unknown[0]!r} is not in labelvocabulary.csv.",
                           hint="Restore the split file and labelvocabulary.csv from the same HEAR task archive.")
    if multilabel:
        return tuple(sorted({index[str(label)] for label in labels}))
    if len(labels) != 1:
        raise DatasetError(f"{path}, entry {name!r}: a multiclass task needs exactly one label, got {labels!r}.",
                           hint="Restore the split file from the HEAR task archive.")
    return index[str(labels[0])]


def load_hear(data_dir: Path | None = None, download: bool = False, root: str | Path | None = None,
              task: str | None = None, sample_rate: int | None = None, clips: int | None = None) -> DatasetIndex:
    """Index a HEAR scene task (see the module docstring; timestamp tasks: :func:`.hear_events.load_hear_events`).

    ``task`` is the task directory's name (built-in cards), searched under ``data_dir`` (default: the
    cache's ``datasets/hear``); ``root`` is the task directory itself (``hear:<path>`` tasks).
    ``clips`` is the published clip count of the task (HEAR task table), checked as its official list.
    K-fold tasks give clips a ``fold`` (0 for ``fold00``); train/valid/test tasks a ``split``.
    """
    if download:
        raise DatasetError("--download is not supported for HEAR tasks (archives of up to tens of GB).",
                           hint=f"Download the task archive from {ZENODO_URL}, unpack it and pass --data-dir.")
    task_dir = find_task_dir(data_dir, task, root)
    metadata = read_task_metadata(task_dir)
    if task is not None and root is None and task not in (versioned_name(metadata), task_dir.name):
        raise DatasetError(f"{task_dir / 'task_metadata.json'} describes task {versioned_name(metadata)!r}, "
                           f"not {task!r}.", hint="Point --data-dir at the task directory this card names.")
    if metadata["embedding_type"] == "event":
        from audiobench.datasets.hear_events import load_hear_events

        return load_hear_events(task_dir, metadata, sample_rate, clips)
    classes = read_vocabulary(task_dir)
    index = {label: i for i, label in enumerate(classes)}
    multilabel = metadata["prediction_type"] == "multilabel"
    kfold = metadata["split_mode"] != "trainvaltest"
    _, audio = audio_dir(task_dir, sample_rate)
    listed: list[tuple[str, int | tuple[int, ...], str, Path]] = []
    for split in metadata["splits"]:
        path = task_dir / f"{split}.json"
        listed += [(name, _label(path, name, labels, index, multilabel), split, path)
                   for name, labels in _read_split(path).items()]
    fold_of = {s: int(FOLD_NAME.fullmatch(s).group(1)) for s in metadata["splits"]} if kfold else {}
    check_unique(((name, f"{path.name} entry {name!r}", fold_of.get(split), Path(name).stem)
                  for name, _, split, path in listed), task_dir)
    found, missing, expected = [], [], {}
    for name, label, split, _ in listed:
        fold = fold_of.get(split)
        if fold is not None:
            expected[fold] = expected.get(fold, 0) + 1
        wav = audio / split / name
        if wav.is_file():
            found.append(Clip(clip_id=name, path=wav, label=label, fold=fold, split=None if kfold else split))
        else:
            missing.append(name)
    official = None if clips is None else OfficialList(
        total=int(clips), per_fold={}, sha256=None, source=f"HEAR 2021 task table, {TASKS_PAGE}")
    return DatasetIndex(name=f"hear:{versioned_name(metadata)}", classes=classes, clips=found,
                        expected_per_fold=dict(sorted(expected.items())), missing=missing,
                        clip_seconds=metadata.get("sample_duration"), official_list=official,
                        listed_sha256=list_sha256((n, label, s) for n, label, s, _ in listed))


def _published_clips(name: str) -> int | None:
    """The ``clips`` option of the built-in card of HEAR task directory ``name``, if there is one."""
    from audiobench.tasks import load_task_cards

    for card in load_task_cards().values():
        if card.dataset == "hear" and card.dataset_options.get("task") == name:
            return card.dataset_options.get("clips")
    return None


def hear_task_card(path: str | Path):
    """A task card for the HEAR task directory ``path`` (``--task hear:<path>``), built from its metadata.

    Folds ``fold00..`` become card folds ``0..``; train/valid/test tasks get fixed splits. The primary
    metric is HEAR's first ``evaluation`` score mapped by :data:`HEAR_METRICS` (unmappable scores are
    left out and named in the description); the protocol is HEAR's MLP (``mlp-probe``) selecting on it.
    """
    from audiobench.tasks import parse_card

    task_dir = find_task_dir(None, root=path).resolve()
    metadata = read_task_metadata(task_dir)
    if metadata["embedding_type"] == "event":
        from audiobench.datasets.hear_events import hear_event_card_data

        return parse_card(hear_event_card_data(task_dir, metadata, _published_clips(versioned_name(metadata))),
                          task_dir / "task_metadata.json")
    multilabel = metadata["prediction_type"] == "multilabel"
    mapped = {score: HEAR_METRICS.get(score) for score in metadata["evaluation"]}
    if multilabel:
        mapped["top1_acc"] = None
    usable = [m for m in mapped.values() if m]
    primary = mapped.get(metadata["evaluation"][0]) if metadata["evaluation"] else None
    if primary is None:
        raise AudiobenchError(f"{task_dir / 'task_metadata.json'}: the primary HEAR score "
                              f"{(metadata['evaluation'] or [None])[0]!r} has no audiobench metric.",
                              hint=f"Supported HEAR scores: {', '.join(HEAR_METRICS)}.")
    if metadata["split_mode"] == "trainvaltest":
        splits: dict[str, Any] = {"type": "fixed", "train": ["train"], "valid": ["valid"], "test": ["test"]}
    else:
        splits = {"type": "folds", "folds": sorted(int(FOLD_NAME.fullmatch(s).group(1)) for s in metadata["splits"])}
    skipped = [score for score, metric in mapped.items() if metric is None]
    name = versioned_name(metadata)
    clips = _published_clips(name)
    data = {
        "name": f"hear:{name}",
        "description": f"HEAR task {name} ({metadata['prediction_type']}, {metadata['split_mode']}) from {task_dir}"
                       + (f"; HEAR scores without an audiobench metric: {', '.join(skipped)}" if skipped else ""),
        "dataset": "hear", "label_type": metadata["prediction_type"], "metric": primary,
        "metrics": [m for m in dict.fromkeys(usable) if m != primary], "protocol": "mlp-probe",
        "protocol_options": {"select_metric": primary}, "splits": splits,
        "clip_seconds": metadata.get("sample_duration"),
        "dataset_options": {"root": str(task_dir), **({"clips": clips} if clips is not None else {})},
        "homepage": TASKS_PAGE,
    }
    return parse_card(data, task_dir / "task_metadata.json")
