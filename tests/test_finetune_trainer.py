"""Fine-tuning pieces on tiny random models: the new head, the training step, augmentations and losses,
training-state checkpoints, and fine-tuned weights saved with their card and loaded again strictly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch

from audiobench.errors import AudiobenchError, CheckpointError
from audiobench.finetune.checkpointing import check_same_config, load_state, restore_rng, rng_state, save_state
from audiobench.finetune.data import ClipTargets, derived_seed
from audiobench.finetune.device_ir import DeviceIRAugment
from audiobench.finetune.head import replace_head
from audiobench.finetune.pipeline import Augmenter, Batch, Objective, check_objective
from audiobench.finetune.recipes import resolve_recipe
from audiobench.finetune.saved import card_path, load_any, load_finetuned, read_saved_card, save_finetuned
from audiobench.finetune.trainer import FineTuner
from audiobench.models.loading import load_model

RATE = 32_000


def _mn04(seed: int = 0):
    torch.manual_seed(seed)
    return load_model("mn04")  # random weights: no checkpoint is read


def test_new_head_of_a_mobilenet_keeps_the_rest():
    model = _mn04()
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    replace_head(model, 3, "multiclass", "toy")
    assert model.network.classifier[5].out_features == 3 and model.network.num_classes == 3
    assert (model.card.num_classes, model.card.output_activation, model.card.label_set) == (3, "softmax", "toy")
    assert model.card.config["head_classes"] == 3 and model.fingerprint()["config"]["head_classes"] == 3
    after = model.network.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k]) or before[k].shape != after[k].shape] == [
        "classifier.5.weight", "classifier.5.bias"]
    assert float(after["classifier.5.weight"].std()) == pytest.approx(0.01, rel=0.3)  # MobileNet init N(0, .01)
    with torch.no_grad():
        probabilities = model.probabilities(torch.randn(2, 8000))
    assert probabilities.shape == (2, 3) and torch.allclose(probabilities.sum(1), torch.ones(2))


def test_new_head_of_cpmobile_and_passt():
    from audiobench.frontends import MelConfig
    from audiobench.models.mel_adapter import MelNetworkModel
    from audiobench.models.passt import PaSST, PaSSTConfig
    from audiobench.registry import MODELS

    cp = replace_head(load_model("cpmobile"), 4, "multilabel")
    assert cp.network.feed_forward[0].out_channels == 4 and cp.network.feed_forward[1].num_features == 4
    assert cp.card.output_activation == "sigmoid"
    card = MODELS.entry("passt-s").info
    small = PaSST(PaSSTConfig(embed_dim=32, depth=1, num_heads=2, input_tdim=100))
    passt = replace_head(MelNetworkModel(card, small, MelConfig()), 5, "multiclass")
    assert passt.network.head[1].out_features == 5 and passt.network.head_dist.out_features == 5
    assert passt.network.config.num_classes == 5
    with pytest.raises(AudiobenchError, match="no known classification head"):
        replace_head(load_model("logmel-stats"), 3, "multiclass")


def _tuner(recipe_options: dict, targets: ClipTargets, **extra) -> FineTuner:
    recipe = resolve_recipe("eat-esc50", "efficientat-mn", "toy", {"init": "random", **recipe_options})
    return FineTuner(base=_mn04(), recipe=recipe, source=None, targets=targets, device=torch.device("cpu"), seed=0,
                     num_classes=targets.soft.shape[1], label_type="multiclass", task="toy", **extra)


def test_loss_goes_down_on_a_fixed_batch():
    torch.set_num_threads(1)
    soft = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    tuner = _tuner({"augment": [], "lr": 3e-3, "schedule": "constant"}, ClipTargets(soft, None, None))
    torch.manual_seed(0)
    model = tuner.new_model().train()
    parts = tuner._parts(model)
    t = torch.arange(4000) / RATE
    waves = torch.stack([torch.sin(2 * torch.pi * (400.0 if k % 2 == 0 else 3000.0) * t) * 0.3 for k in range(4)])
    augmenter, objective = Augmenter(tuner.recipe, torch.Generator().manual_seed(0)), Objective(tuner.recipe)
    losses = [tuner._step(model, parts, augmenter, objective, [0, 1, 2, 3], waves) for _ in range(5)]
    assert losses[-1] < 0.2 * losses[0], losses


def test_augmentations_in_recipe_order_are_reproducible(tmp_path):
    irs = tmp_path / "irs"
    irs.mkdir()
    for k in range(2):
        sf.write(irs / f"ir{k}.wav", np.r_[1.0, 0.5 * k, 0.25].astype(np.float32), RATE)
    recipe = resolve_recipe("dcase23-cpmobile", "cp-mobile", "tau22", {
        "augment": ["dir", "gain", "roll", "wavmix", "spec_mask", "mixup", "mixstyle"], "freqm": 8, "timem": 4,
        "mixstyle_p": 1.0, "dir_p": 1.0})
    stage = load_model("mn04").input_stage()

    def augmented(seed: int) -> Batch:
        generator = torch.Generator().manual_seed(seed)
        augmenter = Augmenter(recipe, generator, DeviceIRAugment.from_directory(irs, RATE, p=1.0, seed=seed))
        soft = torch.eye(3)[[0, 1, 2, 0]]
        torch.manual_seed(123)
        batch = Batch(torch.randn(4, 8000) * 0.1, soft, soft, device_a=torch.tensor([True, False, True, False]))
        batch = augmenter.waveforms(batch)
        return augmenter.spectrograms(dataclasses.replace(batch, x=stage(batch.x)))

    first, again, other = augmented(1), augmented(1), augmented(2)
    assert first.x.shape == (4, 1, 1, 128, 25) and torch.equal(first.x, again.x) and not torch.equal(first.x, other.x)
    assert torch.allclose(first.targets.sum(1), torch.ones(4)) and first.mix is not None
    with pytest.raises(AudiobenchError, match="none were loaded"):
        Augmenter(recipe, torch.Generator())


def test_losses_and_their_checks():
    logits = torch.randn(4, 3)
    batch = Batch(torch.zeros(4, 1), torch.rand(4, 3), torch.rand(4, 3))
    openmic = resolve_recipe("eat-openmic", "efficientat-mn", "openmic")
    mask = torch.tensor([[1, 0, 1]] * 4, dtype=torch.bool)
    assert torch.isfinite(Objective(openmic)(logits, batch, [0, 1, 2, 3], mask))
    cp = resolve_recipe("dcase23-cpmobile", "cp-mobile", "tau22", {"teacher": ["cpmobile"]})
    one_hot = torch.eye(3)[[0, 1, 2, 0]]
    kd = Objective(cp, teacher_logits=torch.randn(6, 3))(
        logits, Batch(torch.zeros(4, 1), one_hot, one_hot, mix=(torch.tensor([1, 0, 3, 2]), torch.full((4,), 0.7))),
        [0, 2, 4, 5], None)
    assert torch.isfinite(kd)
    with pytest.raises(AudiobenchError, match="trains multiclass tasks"):
        check_objective(resolve_recipe("eat-esc50", "efficientat-mn", "esc50"), "multilabel")
    with pytest.raises(AudiobenchError, match="wavmix together with distillation"):
        check_objective(resolve_recipe("dcase23-cpmobile", "cp-mobile", "tau22",
                                       {"teacher": ["cpmobile"], "augment": ["wavmix"]}), "multiclass")


def test_training_state_round_trip(tmp_path):
    model = _mn04()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    torch.manual_seed(5)
    rng = rng_state()
    expected = torch.rand(3)
    save_state(tmp_path / "s.pt", {"config": {"lr": 1e-3, "split": "fold1"}, "model": model.network.state_dict(),
                                   "optimizer": optimizer.state_dict(), "rng": rng})
    state = load_state(tmp_path / "s.pt")
    torch.manual_seed(99)
    restore_rng(state["rng"])
    assert torch.equal(torch.rand(3), expected)
    check_same_config(tmp_path / "s.pt", state["config"], {"lr": 1e-3, "split": "fold1"})
    with pytest.raises(AudiobenchError, match=r"another configuration: lr \(0.001 in the checkpoint, 0.01 now\)"):
        check_same_config(tmp_path / "s.pt", state["config"], {"lr": 1e-2, "split": "fold1"})
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(AudiobenchError, match="cannot be read"):
        load_state(tmp_path / "bad.pt")
    assert derived_seed(0, 1, 2) == derived_seed(0, 1, 2) != derived_seed(0, 2, 1)


def test_fine_tuned_weights_reload_strictly(tmp_path):
    model = replace_head(_mn04(), 3, "multilabel", "toy").eval()
    path = tmp_path / "fold1.pt"
    sha256 = save_finetuned(model, path, {"task": "toy", "score": {"mAP": 0.5}})
    card = read_saved_card(path)
    assert card_path(path).name == "fold1.card.json" and card["weights_sha256"] == sha256
    assert (card["num_classes"], card["output_activation"], card["model"]) == (3, "sigmoid", "mn04")
    wave = torch.randn(2, 8000)
    for loaded in (load_finetuned("mn04", path), load_any(f"mn04@{path}")):
        assert loaded.checkpoint_sha256 == sha256 and loaded.card.num_classes == 3
        with torch.no_grad():
            assert torch.equal(loaded.probabilities(wave), model.probabilities(wave))
    with pytest.raises(CheckpointError, match="fine-tuned from a efficientat-mn model"):
        load_finetuned("cpmobile", path)
    card_path(path).unlink()
    with pytest.raises(CheckpointError, match="no fine-tuned model card"):
        load_finetuned("mn04", path)
