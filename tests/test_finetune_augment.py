"""Mixup, waveform augmentations and spectrogram masking of audiobench.finetune."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiobench.errors import AudiobenchError
from audiobench.finetune.mixup import folded_beta, mix_targets, mixed_cross_entropy, mixup
from audiobench.finetune.spec_masking import frequency_mask, mask_along_axis, spec_augment, time_mask
from audiobench.finetune.waveform_augment import (apply_gain_db, random_gain, random_time_roll, roll_each,
                                                  wavmix)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_mixup_lambda_and_hand_formula():
    x = torch.randn(16, 1, 8, 10, generator=seeded(1))
    mixed, perm, lam = mixup(x, alpha=0.3, generator=seeded(2))
    assert lam.shape == (16,) and bool((lam >= 0.5).all()) and bool((lam <= 1.0).all())
    assert sorted(perm.tolist()) == list(range(16))
    for i in range(16):
        expected = lam[i] * x[i] + (1 - lam[i]) * x[perm[i]]
        assert torch.allclose(mixed[i], expected, atol=1e-6)
    again = mixup(x, alpha=0.3, generator=seeded(2))
    assert torch.equal(again.inputs, mixed) and torch.equal(again.perm, perm) and torch.equal(again.lam, lam)
    assert not torch.equal(mixup(x, alpha=0.3, generator=seeded(3)).lam, lam)


def test_folded_beta_range_and_bad_alpha():
    draws = folded_beta(0.3, 2000, seeded(0))
    assert bool((draws >= 0.5).all()) and bool((draws <= 1.0).all())
    assert draws.mean().item() > 0.75  # Beta(0.3, 0.3) piles up near 0 and 1
    with pytest.raises(AudiobenchError):
        folded_beta(0.0, 4)


def test_mix_targets_and_mixed_cross_entropy():
    y = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 0, 1]])
    perm, lam = torch.tensor([2, 0, 1]), torch.tensor([0.75, 0.5, 1.0])
    mixed = mix_targets(y, perm, lam)
    assert torch.allclose(mixed, torch.tensor([[0.75, 0.0, 1.0], [0.5, 0.5, 0.5], [0.0, 0.0, 1.0]]))
    logits = torch.randn(3, 4, generator=seeded(4))
    y_index = torch.tensor([0, 3, 1])
    per_example = mixed_cross_entropy(logits, y_index, perm, lam, reduction="none")
    expected = lam * F.cross_entropy(logits, y_index, reduction="none") + \
        (1 - lam) * F.cross_entropy(logits, y_index[perm], reduction="none")
    assert torch.allclose(per_example, expected)
    assert torch.allclose(mixed_cross_entropy(logits, y_index, perm, lam), expected.mean())
    with pytest.raises(AudiobenchError):
        mixed_cross_entropy(logits, y_index, perm, lam, reduction="median")


def test_roll_each_matches_torch_roll():
    x = torch.arange(30.0).reshape(3, 1, 10)
    shifts = torch.tensor([3, -4, 0])
    rolled = roll_each(x, shifts)
    for i, shift in enumerate(shifts.tolist()):
        assert torch.equal(rolled[i], torch.roll(x[i], shift, dims=-1))
    assert torch.equal(roll_each(x[:, 0], shifts), rolled[:, 0])


def test_random_time_roll_shift_bounds_and_reproducibility():
    x = torch.randn(32, 50, generator=seeded(5))
    rolled = random_time_roll(x, max_shift=3, generator=seeded(6))
    assert rolled.shape == x.shape
    found = set()
    for i in range(32):
        matches = [s for s in range(-3, 4) if torch.equal(rolled[i], torch.roll(x[i], s))]
        assert matches, f"row {i} is not a roll of at most 3 samples"
        found.add(matches[0])
    assert len(found) > 3  # shifts differ between examples
    assert torch.equal(random_time_roll(x, 3, seeded(6)), rolled)
    assert torch.equal(random_time_roll(x, 0, seeded(6)), x)


def test_gain_exact_formula_and_bounds():
    x = torch.ones(4, 1, 5)
    gained = apply_gain_db(x, torch.tensor([0.0, 20.0, -20.0, 6.0]))
    assert torch.allclose(gained[:, 0, 0], torch.tensor([1.0, 10.0, 0.1, 10 ** 0.3]))
    y = random_gain(torch.ones(200, 8), max_gain_db=12.0, generator=seeded(7))
    gains_db = 20 * torch.log10(y[:, 0].double())
    assert bool((gains_db.abs() <= 12.0 + 1e-4).all()) and gains_db.std().item() > 3.0
    assert torch.allclose(y, y[:, :1].expand_as(y))  # one gain per example
    whole = 20 * torch.log10(random_gain(torch.ones(300, 2), 12, seeded(8), integer_db=True)[:, 0].double())
    assert torch.allclose(whole, whole.round(), atol=1e-4)
    assert whole.round().min().item() == -12 and whole.round().max().item() == 11


def test_wavmix_formula_probability_and_targets():
    x = torch.randn(64, 1, 40, generator=seeded(9)) + 0.3
    mixed, perm, lam = wavmix(x, p=0.5, beta=2.0, generator=seeded(10))
    chosen = lam < 1.0
    assert mixed.shape == x.shape and bool((lam >= 0.5).all())
    assert 16 < int(chosen.sum()) < 48
    centred = x - x.mean(dim=-1, keepdim=True)
    for i in range(64):
        if chosen[i]:
            expected = lam[i] * centred[i] + (1 - lam[i]) * centred[perm[i]]
            expected = expected - expected.mean()
            assert torch.allclose(mixed[i], expected, atol=1e-5)
        else:
            assert torch.equal(mixed[i], x[i])
    y = torch.eye(64)
    targets = mix_targets(y, perm, lam)
    assert torch.allclose(targets.sum(dim=1), torch.ones(64))
    assert torch.equal(wavmix(x, p=0.0, generator=seeded(1)).inputs, x)
    assert torch.equal(wavmix(x, p=0.5, generator=seeded(10)).inputs, mixed)


def test_masks_are_bounded_zero_bands_one_per_example():
    spec = torch.rand(40, 1, 16, 30, generator=seeded(11)) + 1.0  # no zeros before masking
    masked = frequency_mask(spec, 6, seeded(12))
    widths = []
    for i in range(40):
        zero_rows = (masked[i, 0] == 0).all(dim=1).nonzero().flatten().tolist()
        assert torch.equal(masked[i, 0] == 0, (masked[i, 0] == 0).all(dim=1, keepdim=True).expand(16, 30))
        if zero_rows:  # one contiguous band
            assert zero_rows == list(range(zero_rows[0], zero_rows[-1] + 1))
        widths.append(len(zero_rows))
        keep = masked[i, 0] != 0
        assert torch.equal(masked[i, 0][keep], spec[i, 0][keep])
    assert max(widths) <= 5 and len(set(widths)) > 2
    timed = time_mask(spec[:, 0], 10, seeded(13))  # [B, F, T] input
    zero_cols = [int((timed[i] == 0).all(dim=0).sum()) for i in range(40)]
    assert max(zero_cols) <= 9 and int((timed == 0).sum()) == 16 * sum(zero_cols)
    assert torch.equal(frequency_mask(spec, 6, seeded(12)), masked)


def test_spec_augment_both_axes_and_errors():
    spec = torch.rand(8, 1, 12, 20, generator=seeded(14)) + 1.0
    assert spec_augment(spec, 0, 0, seeded(0)) is spec
    both = spec_augment(spec, 5, 8, seeded(15))
    assert both.shape == spec.shape and bool((both == 0).any())
    assert torch.equal(spec[spec != 0], spec.flatten())  # the input is left untouched
    with pytest.raises(AudiobenchError):
        mask_along_axis(spec[0, 0], 4, -1)
    with pytest.raises(AudiobenchError):
        mask_along_axis(spec, 4, 1)
