"""Freq-MixStyle, distillation losses, teacher logits and the multi-label losses (audiobench.finetune)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from audiobench.audio import load_audio
from audiobench.datasets.base import Clip
from audiobench.errors import AudiobenchError
from audiobench.finetune.distillation import distillation_loss, distillation_terms, teacher_logits
from audiobench.finetune.freq_mixstyle import FreqMixStyle, freq_mixstyle, mix_frequency_statistics
from audiobench.finetune.losses import bce_with_targets, masked_bce, mixed_bce
from generated_audio import noise_clips

# --- Freq-MixStyle -------------------------------------------------------------------------------------


def test_mixed_statistics_match_hand_computation() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 1, 8, 50)).astype(np.float32) * rng.uniform(0.5, 3, (4, 1, 8, 1)) + 2.0
    lam, perm = np.array([0.2, 0.5, 0.9, 1.0], np.float32), np.array([2, 0, 3, 1])
    out = mix_frequency_statistics(torch.from_numpy(x), torch.from_numpy(lam), torch.from_numpy(perm)).numpy()
    assert out.shape == x.shape
    mu = x.astype(np.float64).mean(axis=(1, 3))  # [B, F]
    var = x.astype(np.float64).var(axis=(1, 3), ddof=1)
    sigma = np.sqrt(var + 1e-6)
    mu_mix = lam[:, None] * mu + (1 - lam[:, None]) * mu[perm]
    sigma_mix = lam[:, None] * sigma + (1 - lam[:, None]) * sigma[perm]
    np.testing.assert_allclose(out.mean(axis=(1, 3)), mu_mix, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 3), ddof=1), sigma_mix * np.sqrt(var) / sigma, atol=1e-5)
    np.testing.assert_allclose(out[3], x[3], atol=1e-5)  # lam 1 keeps the clip's own style


def test_statistics_are_detached() -> None:
    x = (torch.randn(3, 1, 5, 20) * 2 + 1).requires_grad_(True)
    lam, perm = torch.tensor([0.3, 0.6, 0.1]), torch.tensor([1, 2, 0])
    mix_frequency_statistics(x, lam, perm).sum().backward()
    sigma = (x.detach().var(dim=(1, 3), keepdim=True) + 1e-6).sqrt()
    sigma_mix = lam.reshape(-1, 1, 1, 1) * sigma + (1 - lam.reshape(-1, 1, 1, 1)) * sigma[perm]
    torch.testing.assert_close(x.grad, (sigma_mix / sigma).expand_as(x))


def test_probability_shapes_and_determinism() -> None:
    x = torch.randn(6, 1, 16, 30)
    assert freq_mixstyle(x, p=0.0) is x
    first = freq_mixstyle(x, p=1.0, alpha=0.3, generator=torch.Generator().manual_seed(5))
    second = freq_mixstyle(x, p=1.0, alpha=0.3, generator=torch.Generator().manual_seed(5))
    other = freq_mixstyle(x, p=1.0, alpha=0.3, generator=torch.Generator().manual_seed(6))
    assert first.shape == x.shape and torch.equal(first, second) and not torch.equal(first, other)
    module = FreqMixStyle(p=1.0).eval()
    assert module(x) is x
    assert module.train()(x).shape == x.shape


# --- distillation losses (numbers computed with plain math) --------------------------------------------


def _bce(logit: float, target: float) -> float:
    return math.log1p(math.exp(logit)) - target * logit


def _sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def _log_softmax(values: list[float]) -> list[float]:
    log_total = math.log(sum(math.exp(v) for v in values))
    return [v - log_total for v in values]


def test_audioset_kind_hand_computed() -> None:
    student, teacher, targets = [0.0, 2.0], [1.0, -1.0], [1.0, 0.0]
    temperature, weight = 2.0, 0.1
    label = sum(_bce(s, y) for s, y in zip(student, targets)) / 2
    kd = sum(_bce(s, _sigmoid(t / temperature)) for s, t in zip(student, teacher)) / 2  # student not scaled
    got = distillation_loss(torch.tensor([student]), torch.tensor([teacher]), torch.tensor([targets]),
                            kind="audioset", temperature=temperature, weight=weight)
    assert got.item() == pytest.approx(weight * label + (1 - weight) * kd, abs=1e-6)
    default = distillation_loss(torch.tensor([student]), torch.tensor([teacher]), torch.tensor([targets]),
                                kind="audioset")  # T 1, weight 0.1
    kd1 = sum(_bce(s, _sigmoid(t)) for s, t in zip(student, teacher)) / 2
    assert default.item() == pytest.approx(0.1 * label + 0.9 * kd1, abs=1e-6)


def test_audioset_kind_with_mixup_mixes_label_and_teacher_targets() -> None:
    student = [[0.5, -1.0], [2.0, 0.0]]
    teacher = [[1.0, 0.0], [-2.0, 3.0]]
    targets = [[1.0, 0.0], [0.0, 1.0]]
    perm, lam = [1, 0], [0.7, 0.4]
    label = kd = 0.0
    for b in range(2):
        mixed = [lam[b] * targets[b][c] + (1 - lam[b]) * targets[perm[b]][c] for c in range(2)]
        label += sum(_bce(student[b][c], mixed[c]) for c in range(2)) / 2 / 2
        own = sum(_bce(student[b][c], _sigmoid(teacher[b][c])) for c in range(2)) / 2
        partner = sum(_bce(student[b][c], _sigmoid(teacher[perm[b]][c])) for c in range(2)) / 2
        kd += (lam[b] * own + (1 - lam[b]) * partner) / 2
    got_label, got_kd = distillation_terms(torch.tensor(student), torch.tensor(teacher), torch.tensor(targets),
                                           kind="audioset", mix=(torch.tensor(perm), torch.tensor(lam)))
    assert got_label.item() == pytest.approx(label, abs=1e-6)
    assert got_kd.item() == pytest.approx(kd, abs=1e-6)


def test_dcase23_kind_hand_computed() -> None:
    student, teacher, target = [1.0, 2.0, 3.0], [3.0, 1.0, 0.0], 2
    temperature, weight = 2.0, 0.02
    label = -_log_softmax(student)[target]
    log_p = _log_softmax([t / temperature for t in teacher])
    log_q = _log_softmax([s / temperature for s in student])
    kl_mean_over_classes = sum(math.exp(p) * (p - q) for p, q in zip(log_p, log_q)) / 3
    want = weight * label + (1 - weight) * kl_mean_over_classes * temperature**2
    got = distillation_loss(torch.tensor([student]), torch.tensor([teacher]), torch.tensor([target]),
                            kind="dcase23")  # recipe defaults: T 2, weight 0.02 on the label loss
    assert got.item() == pytest.approx(want, abs=1e-6)
    only_labels = distillation_loss(torch.tensor([student]), torch.tensor([teacher]), torch.tensor([target]),
                                    kind="dcase23", weight=1.0)
    assert only_labels.item() == pytest.approx(label, abs=1e-6)


def test_unknown_kind_and_bad_weight_are_refused() -> None:
    logits = torch.zeros(1, 3)
    with pytest.raises(AudiobenchError, match="Unknown distillation kind"):
        distillation_loss(logits, logits, torch.tensor([0]), kind="nope")
    with pytest.raises(AudiobenchError, match="outside"):
        distillation_loss(logits, logits, torch.tensor([0]), weight=1.5)


# --- teacher logits -------------------------------------------------------------------------------------


@pytest.fixture
def clips(tmp_path: Path) -> list[Clip]:
    return noise_clips(tmp_path, 2, prefix="clip")


def test_ensemble_teacher_is_mean_of_member_logits_and_is_cached(clips: list[Clip], tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from audiobench import load_model

    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = load_model("cpmobile")
        model.checkpoint_sha256 = f"fake-weights-{seed}"  # two different "checkpoints"
        members.append(model)
    root = tmp_path / "logits"
    got = teacher_logits(members, clips, 1.0, root, batch_size=2, num_workers=0)
    waves = torch.from_numpy(np.stack([load_audio(c.path, 32000, 1.0) for c in clips]))
    with torch.inference_mode():
        want = (members[0].logits(waves) + members[1].logits(waves)) / 2
    assert got.shape == (2, 10)
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)

    for model in members:  # the second call reads every member's logits from the cache
        monkeypatch.setattr(model, "logits", lambda *_: pytest.fail("logits recomputed"))
    np.testing.assert_array_equal(teacher_logits(members, clips, 1.0, root, num_workers=0), got)

    (record_path,) = (root / "teachers").glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["combine"] == "mean of logits"
    assert [m["fingerprint"]["checkpoint_sha256"] for m in record["members"]] == ["fake-weights-0", "fake-weights-1"]
    assert all(m["fingerprint"]["output"] == "logits" for m in record["members"])


# --- multi-label losses --------------------------------------------------------------------------------


def test_masked_bce_counts_known_labels_only() -> None:
    logits = [[0.5, -1.0, 2.0], [0.0, 1.0, -0.5]]
    targets = [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    mask = [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    known = [_bce(x, y) for lr, tr, mr in zip(logits, targets, mask) for x, y, m in zip(lr, tr, mr) if m]
    lt, tt, mt = torch.tensor(logits), torch.tensor(targets), torch.tensor(mask)
    assert masked_bce(lt, tt, mt).item() == pytest.approx(sum(known) / 3, abs=1e-6)
    assert masked_bce(lt, tt, mt.bool(), normalize="all").item() == pytest.approx(sum(known) / 6, abs=1e-6)
    every = [_bce(x, y) for lr, tr in zip(logits, targets) for x, y in zip(lr, tr)]
    assert masked_bce(lt, tt, None).item() == pytest.approx(sum(every) / 6, abs=1e-6)
    assert masked_bce(lt, tt, torch.zeros(2, 3)).item() == 0.0
    with pytest.raises(AudiobenchError, match="does not match"):
        masked_bce(lt, tt, torch.ones(2, 2))


def test_bce_with_mixed_targets() -> None:
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    mixed = [[1.0, 0.25], [0.5, 0.5], [1.0, 1.0]]  # lam [0.75, 0.5, 1.0], partners [2, 0, 1]
    logits = [[0.3, -0.2], [1.5, 0.0], [-1.0, 2.0]]
    want = sum(_bce(x, y) for lr, tr in zip(logits, mixed) for x, y in zip(lr, tr)) / 6
    assert bce_with_targets(torch.tensor(logits), torch.tensor(mixed)).item() == pytest.approx(want, abs=1e-6)
    got = mixed_bce(torch.tensor(logits), targets, torch.tensor([2, 0, 1]), torch.tensor([0.75, 0.5, 1.0]))
    assert got.item() == pytest.approx(want, abs=1e-6)
