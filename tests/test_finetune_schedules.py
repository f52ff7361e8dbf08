"""Learning-rate schedules and layer-wise learning-rate decay groups of audiobench.finetune."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from audiobench.errors import AudiobenchError
from audiobench.finetune.layer_decay import (MOBILENET_NUM_LAYERS, layerwise_param_groups, mobilenet_layer_of)
from audiobench.finetune.schedules import (ExpWarmupLinearDown, WarmupCosine, exp_warmup_linear_down_scheduler,
                                           warmup_cosine_scheduler)


def test_exp_warmup_linear_down_boundaries_esc50_recipe():
    schedule = ExpWarmupLinearDown(warm_up_len=10, ramp_down_start=10, ramp_down_len=65, last_lr_value=0.01)
    assert schedule(0) == pytest.approx(math.exp(-5 * 0.95 ** 2))  # epoch 0 evaluated at half an epoch
    assert schedule(1) == pytest.approx(math.exp(-5 * 0.9 ** 2))
    assert schedule(9) == pytest.approx(math.exp(-5 * 0.1 ** 2))
    assert schedule(10) == 1.0
    assert schedule(11) == pytest.approx(0.01 + 0.99 * 64 / 65)
    assert schedule(74) == pytest.approx(0.01 + 0.99 / 65)
    assert schedule(75) == pytest.approx(0.01)
    assert schedule(500) == pytest.approx(0.01)


def test_exp_warmup_linear_down_constant_phase_and_monotone():
    schedule = ExpWarmupLinearDown(warm_up_len=8, ramp_down_start=80, ramp_down_len=95, last_lr_value=0.01)
    assert [schedule(e) for e in (8, 40, 80)] == [1.0, 1.0, 1.0]
    assert schedule(81) == pytest.approx(0.01 + 0.99 * 94 / 95)
    values = [schedule(e) for e in range(200)]
    assert all(a < b for a, b in zip(values[:8], values[1:9]))  # strictly rising warm-up
    assert all(a >= b for a, b in zip(values[8:], values[9:]))  # never rising afterwards
    assert values[175] == pytest.approx(0.01) and values[-1] == pytest.approx(0.01)


def test_exp_warmup_linear_down_zero_lengths_and_bad_values():
    assert ExpWarmupLinearDown(0, 0, 0, 0.1)(0) == 1.0
    assert ExpWarmupLinearDown(0, 0, 0, 0.1)(1) == pytest.approx(0.1)
    with pytest.raises(AudiobenchError):
        ExpWarmupLinearDown(-1, 10, 10)
    with pytest.raises(AudiobenchError):
        ExpWarmupLinearDown(1, 10, 10, last_lr_value=-0.5)


def test_exp_warmup_linear_down_scheduler_steps_per_epoch():
    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1e-3)
    scheduler = exp_warmup_linear_down_scheduler(optimizer, 2, 3, 2, 0.1)
    lrs = []
    for _ in range(7):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [math.exp(-5 * 0.75 ** 2), math.exp(-5 * 0.5 ** 2), 1.0, 1.0, 0.55, 0.1, 0.1]
    assert lrs == pytest.approx([1e-3 * f for f in expected])
    restored = exp_warmup_linear_down_scheduler(torch.optim.SGD([weight], lr=1e-3), 5, 5, 5, 0.5)
    restored.load_state_dict(scheduler.state_dict())  # the schedule's fields travel in the state dict
    assert restored.lr_lambdas[0] == ExpWarmupLinearDown(2, 3, 2, 0.1)


def test_warmup_cosine_boundaries_and_monotone():
    schedule = WarmupCosine(warm_up_steps=4, total_steps=12, min_factor=0.1)
    assert [schedule(s) for s in range(5)] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert schedule(8) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    assert schedule(12) == pytest.approx(0.1)
    assert schedule(100) == pytest.approx(0.1)
    decay = [schedule(s) for s in range(4, 20)]
    assert all(a >= b for a, b in zip(decay, decay[1:]))
    assert WarmupCosine(0, 10)(0) == 1.0 and WarmupCosine(0, 10)(10) == pytest.approx(0.0)
    with pytest.raises(AudiobenchError):
        WarmupCosine(20, 10)


def test_warmup_cosine_scheduler_per_step():
    weight = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=2.0)
    scheduler = warmup_cosine_scheduler(optimizer, 2, 4)
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.0, 1.0, 2.0, 1.0, 0.0])


@pytest.fixture(scope="module")
def mn04() -> nn.Module:
    import audiobench

    return audiobench.load_model("mn04", pretrained=False)


def test_mobilenet_layer_of_key_layout():
    assert mobilenet_layer_of("network.features.0.0.weight") == 0
    assert mobilenet_layer_of("features.12.block.2.conc_se_layers.0.fc1.bias") == 12
    assert mobilenet_layer_of("network.classifier.5.weight") == MOBILENET_NUM_LAYERS
    with pytest.raises(AudiobenchError):
        mobilenet_layer_of("frontend.mel_basis")


def test_layerwise_groups_on_mn04_cover_every_parameter_once(mn04):
    groups = layerwise_param_groups(mn04, base_lr=1e-3, decay=0.5, layer_of=mobilenet_layer_of,
                                    num_layers=MOBILENET_NUM_LAYERS, weight_decay=0.01)
    grouped = [id(p) for group in groups for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in mn04.parameters())
    assert len(grouped) == len(set(grouped))
    names = {name: param for name, param in mn04.named_parameters()}
    for group in groups:
        assert len(group["params"]) == len(group["param_names"])
        for name, param in zip(group["param_names"], group["params"]):
            assert names[name] is param
            layer = mobilenet_layer_of(name)
            assert group["layer"] == layer
            assert group["lr"] == pytest.approx(1e-3 * 0.5 ** (MOBILENET_NUM_LAYERS - layer))
            assert group["weight_decay"] == (0.0 if param.dim() <= 1 else 0.01)
    lrs = {group["layer"]: group["lr"] for group in groups}
    assert sorted(lrs) == list(range(MOBILENET_NUM_LAYERS + 1))
    assert lrs[MOBILENET_NUM_LAYERS] == pytest.approx(1e-3) and lrs[16] == pytest.approx(5e-4)
    assert lrs[0] == pytest.approx(1e-3 * 0.5 ** 17)
    optimizer = torch.optim.SGD(groups, lr=1.0)  # the groups are valid optimizer input
    assert len(optimizer.param_groups) == len(groups)


def test_layerwise_groups_skip_frozen_and_check_layers():
    model = nn.Module()
    model.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    model.classifier = nn.Linear(2, 3)
    model.features[0].weight.requires_grad_(False)
    groups = layerwise_param_groups(model, 1.0, 0.9, mobilenet_layer_of, num_layers=MOBILENET_NUM_LAYERS)
    names = [name for group in groups for name in group["param_names"]]
    assert "features.0.weight" not in names and len(names) == 5
    assert [(g["layer"], g["lr"]) for g in groups][0] == (0, pytest.approx(0.9 ** 17))
    with pytest.raises(AudiobenchError):
        layerwise_param_groups(model, 1.0, 0.9, mobilenet_layer_of, num_layers=3)
