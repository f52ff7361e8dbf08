"""``audiobench run --protocol finetune`` end to end on a tiny generated dataset (2 folds of 4 clips, 0.5 s):
the record and predictions file, rescoring, resume after an interruption (bit-exact on CPU), best-on-validation,
distillation from a fine-tuned teacher, reloading the saved weights, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiobench.datasets.base import Clip, DatasetIndex
from audiobench.errors import AudiobenchError
from audiobench.registry import DATASETS, RegistryEntry
from audiobench.runner import Reporter, RunOptions, run

RATE = 32_000
FOLDS_CARD = """name: ft-toy
description: two tones
dataset: ft-toy
label_type: multiclass
clip_seconds: 0.5
splits: {type: folds, folds: [1, 2]}
metric: accuracy
protocol: linear-probe
"""
FIXED_CARD = FOLDS_CARD.replace("name: ft-toy", "name: ft-toy-fixed").replace(
    "{type: folds, folds: [1, 2]}", "{type: fixed, train: [train], valid: [valid], test: [test]}")
OPTIONS = {"init": "random", "batch_size": 2, "lr": 1e-3}


def _write_toy(root: Path) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(int(0.5 * RATE)) / RATE
    rows = []
    for fold, split in ((1, "train"), (2, "valid"), (1, "test"), (2, "train")):
        for label in (0, 1):
            name = f"{split}{fold}-{label}.wav"
            if (root / name).exists():
                name = f"{split}{fold}-{label}b.wav"
            tone = np.sin(2 * np.pi * (500.0 if label == 0 else 3000.0) * t) * rng.uniform(0.2, 0.4)
            sf.write(root / name, (tone + 0.02 * rng.standard_normal(len(t))).astype(np.float32), RATE)
            rows.append([name, label, fold, split])
    (root / "meta.json").write_text(json.dumps(rows))


def load_toy(data_dir: Path | None = None, download: bool = False) -> DatasetIndex:
    rows = json.loads((Path(data_dir) / "meta.json").read_text())
    clips = [Clip(clip_id=n, path=Path(data_dir) / n, label=label, fold=fold, split=split)
             for n, label, fold, split in rows]
    return DatasetIndex(name="ft-toy", classes=["low", "high"], clips=clips, expected_per_fold={1: 4, 2: 4})


def _options(data: Path, out: Path, **extra) -> RunOptions:
    settings = {"task": "ft-toy", "model": "mn04", "data_dir": data, "output_dir": out, "protocol": "finetune",
                "recipe": "eat-esc50", "recipe_options": dict(OPTIONS), "epochs": 2, "threads": 1, "num_workers": 0,
                "device": "cpu", **extra}
    return RunOptions(**settings)


class StopAfter(Reporter):
    """Interrupts the run after the progress message that contains ``text`` (sent after the checkpoint)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def message(self, text: str) -> None:
        if self.text in text:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Cards, data and one uninterrupted 2-epoch run (its own cache; complexity counting stubbed out)."""
    root = tmp_path_factory.mktemp("finetune-toy")
    cards, data = root / "cards", root / "data"
    cards.mkdir(), data.mkdir()
    (cards / "ft-toy.yaml").write_text(FOLDS_CARD)
    (cards / "ft-toy-fixed.yaml").write_text(FIXED_CARD)
    _write_toy(data)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(DATASETS._entries, "ft-toy", RegistryEntry("ft-toy", load_toy, source="test"))
        patch.setenv("AUDIOBENCH_TASKS_PATH", str(cards))
        patch.setenv("AUDIOBENCH_CACHE", str(root / "cache"))
        patch.setattr("audiobench.provenance.git_revision", lambda: None)
        patch.setattr("audiobench.complexity.cached_complexity", lambda model: {"params": model.num_parameters()})
        torch.set_num_threads(1)
        record, path = run(_options(data, root / "baseline"))
        yield {"data": data, "record": record, "path": path}


def test_record_and_predictions(toy):
    from audiobench.finetune.saved import card_path
    from audiobench.predictions import load_predictions

    record = toy["record"]
    assert record["protocol"]["name"] == "finetune" and record["protocol"]["recipe"] == "eat-esc50"
    assert record["protocol"]["evaluated_epoch"] == "last" and record["protocol"]["recipe_overrides"]["epochs"] == 2
    # an overridden recipe is not the published one: the result is never ranked beside official ones
    assert record["protocol"]["official"] is False and "epochs=2" in record["protocol"]["non_official_reason"]
    assert record["model"]["head_classes"] == 2 and record["complexity"]["params"] == record["model"]["params"]
    block = record["finetune"]
    assert block["recipe"]["values"]["lr"] == 1e-3 and block["recipe"]["source"].startswith("fschmid56/EfficientAT")
    assert block["precision"] == "fp32" and block["audio_cache"] is True
    for name in ("fold1", "fold2"):
        split = block["splits"][name]
        assert split["evaluated_epoch"] == 2 and [h["epoch"] for h in split["history"]] == [1, 2]
        assert split["train_clips"] == 4 and split["test_clips"] == 4 and split["resumed_from_epoch"] is None
        assert Path(split["weights"]).is_file() and card_path(Path(split["weights"])).is_file()
    predictions = load_predictions(toy["path"].with_name(toy["path"].stem + ".predictions.npz"))
    assert predictions.scores.shape == (8, 2) and sorted(set(predictions.split)) == ["fold1", "fold2"]
    assert np.allclose(predictions.scores.sum(1), 1.0, atol=1e-5)  # softmax of the new head
    assert record["metrics"]["accuracy"]["per_split"].keys() == {"fold1", "fold2"}


def test_rescore_is_identical(toy):
    from audiobench.report.rescore import rescore

    assert rescore(toy["path"])["identical"]


def test_saved_weights_score_like_the_run(toy):
    from audiobench.audio import load_audio
    from audiobench.finetune.saved import load_finetuned, read_saved_card
    from audiobench.predictions import load_predictions

    split = toy["record"]["finetune"]["splits"]["fold1"]
    card = read_saved_card(Path(split["weights"]))
    assert card["data"]["split"] == "fold1" and card["evaluated_epoch"] == 2 and card["classes"] == ["low", "high"]
    assert card["score"]["accuracy"] == toy["record"]["metrics"]["accuracy"]["per_split"]["fold1"]
    assert card["parent"]["model"] == "mn04" and card["recipe"]["name"] == "eat-esc50"
    model = load_finetuned("mn04", Path(split["weights"]))
    predictions = load_predictions(toy["path"].with_name(toy["path"].stem + ".predictions.npz"))
    rows = np.flatnonzero(predictions.split == "fold1")
    waves = torch.from_numpy(np.stack([load_audio(toy["data"] / predictions.clip_id[i], RATE, 0.5) for i in rows]))
    with torch.no_grad():
        assert np.allclose(model.probabilities(waves).numpy(), predictions.scores[rows], atol=1e-6)
    from audiobench import load_model

    by_checkpoint = load_model("mn04", checkpoint=Path(split["weights"]))  # as `--checkpoint` loads it
    assert by_checkpoint.card.num_classes == 2
    with torch.no_grad():
        assert np.allclose(by_checkpoint.probabilities(waves).numpy(), predictions.scores[rows], atol=1e-6)


def test_resume_after_interruption_equals_the_uninterrupted_run(toy, tmp_path):
    from audiobench.predictions import load_predictions

    with pytest.raises(KeyboardInterrupt):
        run(_options(toy["data"], tmp_path), StopAfter("fold1 epoch 1/2"))
    record, path = run(_options(toy["data"], tmp_path, resume=True))
    baseline = toy["record"]
    assert record["finetune"]["splits"]["fold1"]["resumed_from_epoch"] == 1
    assert record["finetune"]["splits"]["fold2"]["resumed_from_epoch"] is None
    assert record["metrics"] == baseline["metrics"]
    for name in ("fold1", "fold2"):
        ours, theirs = record["finetune"]["splits"][name], baseline["finetune"]["splits"][name]
        assert ours["history"] == theirs["history"]
        mine, other = (torch.load(s["weights"], weights_only=True) for s in (ours, theirs))
        assert all(torch.equal(mine[k], other[k]) for k in other)
    again = load_predictions(path.with_name(path.stem + ".predictions.npz"))
    first = load_predictions(toy["path"].with_name(toy["path"].stem + ".predictions.npz"))
    assert np.array_equal(again.scores, first.scores) and np.array_equal(again.clip_id, first.clip_id)
    changed = _options(toy["data"], tmp_path, resume=True, recipe_options={**OPTIONS, "lr": 2e-3})
    with pytest.raises(AudiobenchError, match=r"another configuration: values\.lr"):
        run(changed)


def test_resume_without_checkpoint_and_early_errors(toy, tmp_path):
    with pytest.raises(AudiobenchError, match="--resume: no fine-tuning checkpoint"):
        run(_options(toy["data"], tmp_path, resume=True))
    with pytest.raises(AudiobenchError, match="Unknown fine-tuning recipe"):
        run(_options(toy["data"], tmp_path, recipe="eat-toy"))
    with pytest.raises(AudiobenchError, match="written for model families"):
        run(_options(toy["data"], tmp_path, model="cpmobile"))
    with pytest.raises(AudiobenchError, match="unknown field 'lr_max'"):
        run(_options(toy["data"], tmp_path, recipe_options={"lr_max": 1.0}))
    with pytest.raises(AudiobenchError, match="no validation clips"):
        run(_options(toy["data"], tmp_path, recipe_options={**OPTIONS, "evaluate_epoch": "best-on-validation"}))
    with pytest.raises(AudiobenchError, match="fine-tuning takes its precision from the recipe"):
        run(_options(toy["data"], tmp_path, precision="bf16"))  # not silently trained in fp32
    with pytest.raises(AudiobenchError, match="do not apply to fine-tuning"):
        run(_options(toy["data"], tmp_path, probe_options={"C": 1.0}))  # not silently ignored


def test_best_on_validation_and_distillation(toy, tmp_path):
    teacher = toy["record"]["finetune"]["splits"]["fold1"]["weights"]
    options = {**OPTIONS, "evaluate_epoch": "best-on-validation", "teacher": [f"mn04@{teacher}"],
               "kd_kind": "dcase23", "augment": ["roll", "mixup"]}
    record, _ = run(_options(toy["data"], tmp_path, task="ft-toy-fixed", recipe_options=options))
    split = record["finetune"]["splits"]["test"]
    scores = [h["valid"] for h in split["history"]]
    assert split["evaluated_epoch"] == 1 + int(np.argmax(scores)) and split["valid_clips"] == 2
    assert split["selection"] == "best epoch on the validation clips"
    assert record["finetune"]["teacher"]["specs"] == [f"mn04@{teacher}"]


def test_cli_passes_the_finetune_options():
    from audiobench.cli import parse_run_command

    options = parse_run_command(["--task", "esc50", "--model", "mn10", "--protocol", "finetune", "--recipe",
                                 "eat-esc50", "--recipe-option", "lr=1e-4", "--recipe-option", "augment=[roll]",
                                 "--epochs", "3", "--resume"])
    assert (options.protocol, options.recipe, options.epochs, options.resume) == ("finetune", "eat-esc50", 3, True)
    assert options.recipe_options == {"lr": "1e-4", "augment": ["roll"]}
