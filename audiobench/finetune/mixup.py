"""Mixup as in the EfficientAT/PaSST recipes: mix each example with a partner from a batch permutation.

The weight of the example itself is ``lam = max(b, 1 - b)`` with ``b ~ Beta(alpha, alpha)`` drawn per
example, so ``lam >= 0.5``: ``mixed[i] = lam[i] x[i] + (1 - lam[i]) x[perm[i]]``. Targets and losses are
mixed with the same ``perm`` and ``lam``. All draws come from an optional ``torch.Generator``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from audiobench.errors import AudiobenchError


class MixResult(NamedTuple):
    """A mixed batch: ``inputs``, the partner of each example ``perm`` ``[B]`` and its own weight ``lam`` ``[B]``."""

    inputs: torch.Tensor
    perm: torch.Tensor
    lam: torch.Tensor


def draw_device(generator: torch.Generator | None) -> torch.device:
    """The device random numbers must be drawn on for ``generator`` (CPU without one)."""
    return generator.device if generator is not None else torch.device("cpu")


def sample_beta(alpha: float, beta: float, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``size`` float32 draws from Beta(alpha, beta) on the CPU, reproducible from ``generator``.

    torch's Beta sampler takes no generator, so one seed is drawn from ``generator`` (or torch's global
    generator) and the Beta values come from numpy's generator seeded with it.
    """
    if alpha <= 0 or beta <= 0:
        raise AudiobenchError(f"Beta parameters must be > 0, got alpha={alpha}, beta={beta}.",
                              hint="Use e.g. alpha 0.3 for mixup or 2.0 for waveform mixing.")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=draw_device(generator)).item())
    return torch.from_numpy(np.random.default_rng(seed).beta(alpha, beta, size).astype(np.float32))


def folded_beta(alpha: float, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``max(b, 1 - b)`` for ``b ~ Beta(alpha, alpha)``: weights in [0.5, 1], CPU float32 ``[size]``."""
    draws = sample_beta(alpha, alpha, size, generator)
    return torch.maximum(draws, 1.0 - draws)


def random_permutation(size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random permutation of ``range(size)`` (int64, CPU)."""
    return torch.randperm(size, generator=generator, device=draw_device(generator)).cpu()


def per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values`` ``[B]`` shaped ``[B, 1, ..., 1]`` to broadcast over ``like``, on its device and dtype."""
    return values.to(device=like.device, dtype=like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def mix_with_partners(x: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """``lam[i] * x[i] + (1 - lam[i]) * x[perm[i]]`` for every example ``i`` (any trailing shape)."""
    weight = per_example(lam, x)
    return x * weight + x[perm.to(x.device)] * (1.0 - weight)


def mixup(x: torch.Tensor, alpha: float = 0.3, generator: torch.Generator | None = None) -> MixResult:
    """Mix a batch ``x`` ``[B, ...]`` (e.g. log-mel spectrograms ``[B, 1, F, T]``) with a permutation of itself."""
    perm = random_permutation(x.shape[0], generator)
    lam = folded_beta(alpha, x.shape[0], generator)
    return MixResult(mix_with_partners(x, perm, lam), perm.to(x.device), lam.to(x.device))


def mix_targets(y: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Mixed multi-hot / one-hot / soft targets ``[B, C]`` (integer or bool targets become float)."""
    targets = y if y.is_floating_point() else y.float()
    return mix_with_partners(targets, perm, lam)


def mixed_cross_entropy(logits: torch.Tensor, y_index: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor,
                        reduction: str = "mean") -> torch.Tensor:
    """``lam * CE(logits, y) + (1 - lam) * CE(logits, y[perm])`` per example, then ``reduction``.

    ``y_index`` holds class indices ``[B]``; ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``.
    """
    reducers = {"mean": torch.mean, "sum": torch.sum, "none": lambda losses: losses}
    if reduction not in reducers:
        raise AudiobenchError(f"Unknown reduction {reduction!r}.", hint=f"Use one of {sorted(reducers)}.")
    weight = lam.to(device=logits.device, dtype=logits.dtype)
    own = F.cross_entropy(logits, y_index, reduction="none")
    partner = F.cross_entropy(logits, y_index[perm.to(y_index.device)], reduction="none")
    return reducers[reduction](own * weight + partner * (1.0 - weight))
