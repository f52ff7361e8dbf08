"""Class-balanced sampling of audiobench.finetune.sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiobench.errors import AudiobenchError
from audiobench.finetune.sampling import ClassBalancedSampler, class_balanced_weights


def skewed_targets() -> np.ndarray:
    """90 clips of class 0, 10 of class 1, one clip with both, one clip without labels."""
    targets = np.zeros((102, 3), dtype=np.uint8)
    targets[:90, 0] = 1
    targets[90:100, 1] = 1
    targets[100, :2] = 1
    return targets


def test_weights_by_hand():
    weights = class_balanced_weights(skewed_targets(), offset=100.0)
    assert weights[0].item() == pytest.approx(1 / 191)
    assert weights[95].item() == pytest.approx(1 / 111)
    assert weights[100].item() == pytest.approx(1 / 191 + 1 / 111)
    assert weights[101].item() == 0.0
    largest = class_balanced_weights(torch.as_tensor(skewed_targets()), offset=100.0, reduce="max")
    assert largest[100].item() == pytest.approx(1 / 111)
    with pytest.raises(AudiobenchError):
        class_balanced_weights(skewed_targets(), reduce="mean")
    with pytest.raises(AudiobenchError):
        class_balanced_weights(np.zeros(5))


def rare_fraction(indices: list[int]) -> float:
    return float(np.mean([90 <= i < 100 for i in indices]))


def test_sampler_favours_rare_classes():
    targets = skewed_targets()
    balanced = list(ClassBalancedSampler.from_targets(targets, 4000, offset=1.0, replacement=True, seed=3))
    assert len(balanced) == 4000 and 101 not in balanced
    assert 0.39 < rare_fraction(balanced) < 0.49  # expected 0.437 (natural share: 0.1)
    default = list(ClassBalancedSampler.from_targets(targets, 4000, replacement=True, seed=3))
    assert 0.12 < rare_fraction(default) < 0.20  # offset 100 softens the balance: expected 0.157


def test_sampler_reproducible_and_epochs_differ():
    first = ClassBalancedSampler.from_targets(skewed_targets(), 50, seed=7)
    second = ClassBalancedSampler.from_targets(skewed_targets(), 50, seed=7)
    epoch0 = list(first)
    assert epoch0 == list(second)
    assert len(set(epoch0)) == 50 and len(first) == 50  # without replacement by default
    epoch1 = list(first)
    assert epoch1 != epoch0
    first.set_epoch(0)
    assert list(first) == epoch0
    assert list(ClassBalancedSampler.from_targets(skewed_targets(), 50, seed=8)) != epoch0


def test_sampler_refuses_impossible_draws():
    with pytest.raises(AudiobenchError):
        ClassBalancedSampler.from_targets(skewed_targets(), 200)  # only 101 clips have a label
    with pytest.raises(AudiobenchError):
        ClassBalancedSampler([1.0, -1.0], 1)
    assert len(list(ClassBalancedSampler.from_targets(skewed_targets(), 200, replacement=True))) == 200
