"""HEAR tasks in the hear-preprocess layout: index, splits, cards built from task_metadata.json, the
built-in cards, refusals, and the pipeline end to end on tiny generated tasks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiobench.datasets.hear import hear_task_card, load_hear
from audiobench.errors import DatasetError
from audiobench.protocols.splits import fixed_splits, official_folds
from audiobench.tasks import load_task_cards

CLASSES = ["bark", "bell", "drum"]
TINY_PROBE = {"hidden_dim": [16], "grid_points": 1, "max_epochs": 6, "device": "cpu"}


def _wav(path: Path, rate: int, freq: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(0.25 * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, subtype="PCM_16")


def make_task(root: Path, kind: str = "kfold", rates: tuple[int, ...] = (16000,), name: str = "tiny") -> Path:
    """A HEAR task directory as hear-preprocess writes it: 5 folds of 6 multiclass clips, or train/valid/test
    multilabel splits (one clip without any label)."""
    task_dir = root / f"{name}-v1-full"
    task_dir.mkdir(parents=True)
    kfold = kind == "kfold"
    splits = [f"fold{i:02d}" for i in range(5)] if kfold else ["train", "valid", "test"]
    metadata = {"task_name": name, "version": "v1", "mode": "full", "embedding_type": "scene",
                "prediction_type": "multiclass" if kfold else "multilabel",
                "split_mode": "new_split_kfold" if kfold else "trainvaltest", "nfolds": 5 if kfold else None,
                "sample_duration": 0.25, "splits": splits,
                "evaluation": ["top1_acc", "mAP", "d_prime", "aucroc"] if kfold else
                ["mAP", "d_prime", "aucroc", "top1_acc"]}
    (task_dir / "task_metadata.json").write_text(json.dumps(metadata))
    (task_dir / "labelvocabulary.csv").write_text("idx,label\n" + "".join(f"{i},{c}\n" for i, c in enumerate(CLASSES)))
    sizes = {"train": 12, "valid": 6, "test": 6}
    for s, split in enumerate(splits):
        entries = {}
        for i in range(6 if kfold else sizes[split]):
            name_ = f"{split}_{i:02d}.wav"
            labels = [CLASSES[i % 3]] if kfold else [CLASSES[c] for c in range(3) if (i >> c) & 1]
            entries[name_] = labels
            for rate in rates:
                _wav(task_dir / str(rate) / split / name_, rate, 300 + 400 * (i % 3))
        (task_dir / f"{split}.json").write_text(json.dumps(entries))
    return task_dir


def test_kfold_multiclass_index_and_card(tmp_path) -> None:
    task_dir = make_task(tmp_path)
    index = load_hear(root=task_dir)
    assert index.name == "hear:tiny-v1-full" and index.classes == CLASSES and index.clip_seconds == 0.25
    assert len(index.clips) == 30 and not index.multilabel and index.missing == []
    assert index.expected_per_fold == {f: 6 for f in range(5)}
    clip = index.clips[0]
    assert (clip.clip_id, clip.fold, clip.split, clip.label) == ("fold00_00.wav", 0, None, 0)
    assert clip.path == task_dir / "16000" / "fold00" / "fold00_00.wav"
    card = hear_task_card(task_dir)
    assert card.name == "hear:tiny-v1-full" and card.dataset == "hear" and card.protocol == "mlp-probe"
    assert card.splits == {"type": "folds", "folds": [0, 1, 2, 3, 4]} and card.label_type == "multiclass"
    assert card.metric == "accuracy" and card.metrics == ["mAP-hear", "d-prime", "aucroc"]
    assert card.protocol_options == {"select_metric": "accuracy"} and card.clip_seconds == 0.25
    assert card.dataset_options == {"root": str(task_dir.resolve())}
    plan = official_folds(index, card.folds)
    assert [s.name for s in plan.splits] == [f"fold{i}" for i in range(5)] and not plan.official  # no clip list


def test_trainvaltest_multilabel_at_the_highest_rate(tmp_path) -> None:
    task_dir = make_task(tmp_path, kind="tvt", rates=(16000, 48000))
    index = load_hear(root=task_dir)
    assert index.multilabel and {c.split for c in index.clips} == {"train", "valid", "test"}
    assert all(c.fold is None and c.path.parts[-3] == "48000" for c in index.clips)
    labels = {c.clip_id: c.label for c in index.clips}
    assert labels["train_00.wav"] == () and labels["train_05.wav"] == (0, 2)  # no label; bark + drum
    assert load_hear(root=task_dir, sample_rate=16000).clips[0].path.parts[-3] == "16000"
    with pytest.raises(DatasetError, match="22050 Hz"):
        load_hear(root=task_dir, sample_rate=22050)
    card = hear_task_card(task_dir)
    assert card.splits == {"type": "fixed", "train": ["train"], "valid": ["valid"], "test": ["test"]}
    assert card.metric == "mAP-hear" and card.metrics == ["d-prime", "aucroc"]  # top1_acc of multi-hot: left out
    assert "top1_acc" in card.description
    plan = fixed_splits(index, card.split_names("train"), card.split_names("test"), card.split_names("valid"))
    assert len(plan.splits[0].train) == 12 and len(plan.splits[0].valid) == 6 and len(plan.splits[0].test) == 6


def test_missing_audio_and_published_count(tmp_path) -> None:
    task_dir = make_task(tmp_path / "hear-2021.0.6" / "tasks")
    assert load_hear(tmp_path, task="tiny-v1-full", clips=30).coverage().official  # found under */tasks/<task>
    assert not load_hear(tmp_path, task="tiny-v1-full", clips=2000).coverage().official
    (task_dir / "16000" / "fold02" / "fold02_01.wav").unlink()
    index = load_hear(task_dir, task="tiny-v1-full", clips=30)
    assert index.missing == ["fold02_01.wav"] and "1 listed clip(s) have no audio file" in index.coverage().summary()
    with pytest.raises(DatasetError, match="describes task 'tiny-v1-full', not 'other-v1-full'"):
        load_hear(task_dir, task="other-v1-full")


def _edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_refusals_name_the_file_and_entry(tmp_path) -> None:
    task_dir = make_task(tmp_path)
    _edit(task_dir / "fold01.json", lambda d: d.update({"fold01_00.wav": ["cat"]}))
    with pytest.raises(DatasetError, match=r"fold01\.json, entry 'fold01_00\.wav': label 'cat'"):
        load_hear(root=task_dir)
    _edit(task_dir / "fold01.json", lambda d: d.update({"fold01_00.wav": ["bark", "bell"]}))
    with pytest.raises(DatasetError, match="exactly one label"):
        load_hear(root=task_dir)
    _edit(task_dir / "fold01.json", lambda d: d.update({"fold01_00.wav": ["bark"], "fold00_00.wav": ["bark"]}))
    with pytest.raises(DatasetError, match="fold 0 and fold 1"):
        load_hear(root=task_dir)
    _edit(task_dir / "task_metadata.json", lambda d: d.update({"embedding_type": "scenes"}))
    with pytest.raises(DatasetError, match="embedding_type"):
        hear_task_card(task_dir)
    with pytest.raises(DatasetError, match="no task_metadata.json") as error:
        load_hear(tmp_path / "nowhere", task="esc50-v2.0.0-full")
    assert "zenodo.org/record/5887964" in error.value.hint and "hear2021-esc50-v2.0.0-full-48000" in error.value.hint
    with pytest.raises(DatasetError, match="--download is not supported"):
        load_hear(download=True, task="esc50-v2.0.0-full")


def test_builtin_cards() -> None:
    cards = {name: card for name, card in load_task_cards().items()
             if card.dataset == "hear" and card.label_type != "events"}
    assert len(cards) == 18  # the 17 HEAR 2021 scene tasks, Beehive as its two split tasks
    tasks = {card.dataset_options["task"] for card in cards.values()}
    assert {"esc50-v2.0.0-full", "speech_commands-v0.0.2-5h", "fsd50k-v1.0-full"} <= tasks
    assert not any(t.startswith(("dcase2016_task2", "maestro")) for t in tasks)  # timestamp tasks: events cards
    for card in cards.values():
        assert card.protocol == "mlp-probe" and card.protocol_options["select_metric"] == card.metric
        assert card.metric in {"accuracy", "mAP-hear", "aucroc"}
        assert len(Path(card.path).read_text().splitlines()) <= 30
    assert cards["hear-esc50"].folds == [0, 1, 2, 3, 4] and cards["hear-esc50"].dataset_options["clips"] == 2000
    assert cards["hear-vocal-imitation"].metric == "mAP-hear" and cards["hear-gtzan-genre"].folds == list(range(10))
    assert cards["hear-beehive-states-fold0"].metric == "aucroc" and cards["hear-fsd50k"].clip_seconds is None


@pytest.mark.parametrize("kind", ["kfold", "tvt"])
def test_hear_path_task_end_to_end(kind, tmp_path, monkeypatch) -> None:
    from audiobench import provenance, runner
    from audiobench.report.rescore import rescore

    monkeypatch.setattr(provenance, "git_revision", lambda directory=None: None)
    task_dir = make_task(tmp_path / "data", kind=kind)
    record, path = runner.run(runner.RunOptions(task=f"hear:{task_dir}", model="logmel-stats", device="cpu",
                                                num_workers=0, batch_size=8, output_dir=tmp_path / "out",
                                                probe_options=TINY_PROBE))
    assert record["task"]["name"] == "hear:tiny-v1-full" and record["protocol"]["name"] == "mlp-probe"
    assert record["protocol"]["official"] is False and record["dataset"]["clips"] == (30 if kind == "kfold" else 24)
    splits = [f"fold{i}" for i in range(5)] if kind == "kfold" else ["test"]
    assert list(record["metrics"][record["task"]["metric"]]["per_split"]) == splits
    assert len(record["protocol"]["chosen"]) == len(splits)
    assert rescore(path)["identical"] is True
    # content-addressed: folds whose arrays are byte-identical (these tones) share one fit within the run too
    assert record["probe_outputs"]["computed"] + record["probe_outputs"]["reused"] == len(splits)
    from audiobench.protocols import mlp_train

    with monkeypatch.context() as patch:  # a re-run takes every split's MLP outputs from the split cache
        patch.setattr(mlp_train, "train", _refuse_training)
        again, _ = runner.run(runner.RunOptions(task=f"hear:{task_dir}", model="logmel-stats", device="cpu",
                                                num_workers=0, batch_size=8, output_dir=tmp_path / "out2",
                                                probe_options=TINY_PROBE))
    assert again["probe_outputs"] == {"computed": 0, "reused": len(splits), "cache": "split-outputs-1"}
    assert again["metrics"] == record["metrics"] and again["protocol"] == record["protocol"]


def _refuse_training(*args, **kwargs):
    raise AssertionError("an MLP was trained although the split's outputs were cached")


def test_builtin_card_end_to_end_is_official_with_the_published_count(tmp_path, monkeypatch) -> None:
    from audiobench import provenance
    from audiobench.runner import RunOptions, run

    monkeypatch.setattr(provenance, "git_revision", lambda directory=None: None)
    cards = tmp_path / "cards"
    cards.mkdir()
    card = (Path(__file__).parents[1] / "tasks" / "hear-esc50.yaml").read_text()
    card = card.replace("name: hear-esc50", "name: hear-tiny").replace("esc50-v2.0.0-full", "tiny-v1-full")
    card = card.replace("clips: 2000", "clips: 30").replace("clip_seconds: 5.0", "clip_seconds: 0.25")
    (cards / "hear-tiny.yaml").write_text(card)
    monkeypatch.setenv("AUDIOBENCH_TASKS_PATH", str(cards))
    make_task(tmp_path / "data" / "tasks")
    record, path = run(RunOptions(task="hear-tiny", model="logmel-stats", data_dir=tmp_path / "data", device="cpu",
                                  num_workers=0, batch_size=8, output_dir=tmp_path / "out", probe_options=TINY_PROBE))
    assert record["protocol"]["official"] is True and record["dataset"]["coverage"] == "30 of 30 clips"
    assert set(record["metrics"]) == {"accuracy", "mAP-hear", "d-prime", "aucroc"}
    assert rescore_identical(path)


def rescore_identical(path: Path) -> bool:
    from audiobench.report.rescore import rescore

    return rescore(path)["identical"] is True
