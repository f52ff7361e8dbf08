"""Freq-MixStyle (Schmid et al., DCASE23 CP-Mobile; EfficientAT/DIR ``mixstyle``).

Mixes the per-frequency statistics of log-mel spectrograms ``[B, C, F, T]`` between examples, so a
model sees a clip "recorded" with another clip's frequency response. Behaviour of the original
``mixstyle`` (cpjku_dcase23 and EfficientAT ``helpers/utils.py``, DIRAugmentation
``helpers/helpers.py``), followed here:

* applied to the whole batch with probability ``p`` (else the input is returned unchanged);
* statistics per example and frequency bin, over channels and time (dims 1 and 3): mean and the
  **unbiased** variance (torch's default), ``sigma = sqrt(var + eps)`` with ``eps = 1e-6``;
* the statistics are **detached** (no gradient flows through them);
* one ``lambda ~ Beta(alpha, alpha)`` **per example** (not folded to >= 0.5) and one batch permutation;
* ``out = (x - mu) / sigma * (lam sigma + (1 - lam) sigma[perm]) + (lam mu + (1 - lam) mu[perm])``.

Recipe values: DCASE23 CP-Mobile p 0.4, alpha 0.3; the function defaults in EfficientAT are p 0.4,
alpha 0.4 (off unless ``--mixstyle_p`` is set).
"""

from __future__ import annotations

import torch
from torch import nn

from audiobench.finetune.mixup import draw_device, random_permutation, sample_beta

__all__ = ["frequency_statistics", "mix_frequency_statistics", "draw_mix", "freq_mixstyle", "FreqMixStyle"]

EPS = 1e-6


def frequency_statistics(x: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Detached (mean, std) ``[B, 1, F, 1]`` over channels and time; std = sqrt(unbiased var + eps)."""
    mu = x.mean(dim=(1, 3), keepdim=True)
    sigma = (x.var(dim=(1, 3), keepdim=True) + eps).sqrt()
    return mu.detach(), sigma.detach()


def mix_frequency_statistics(x: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor,
                             eps: float = EPS) -> torch.Tensor:
    """Re-style ``x [B, C, F, T]`` with statistics mixed as ``lam * own + (1 - lam) * x[perm]``'s (``lam [B]``)."""
    mu, sigma = frequency_statistics(x, eps)
    lam = lam.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1, 1)
    perm = perm.to(x.device)
    mu_mix = lam * mu + (1 - lam) * mu[perm]
    sigma_mix = lam * sigma + (1 - lam) * sigma[perm]
    return (x - mu) / sigma * sigma_mix + mu_mix


def draw_mix(batch: int, alpha: float, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(``lam [B]`` ~ Beta(alpha, alpha), not folded; permutation ``[B]``) on the CPU, reproducible
    with ``generator``."""
    return sample_beta(alpha, alpha, batch, generator), random_permutation(batch, generator)


def freq_mixstyle(x: torch.Tensor, p: float = 0.4, alpha: float = 0.3, eps: float = EPS,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Freq-MixStyle on a spectrogram batch ``[B, C, F, T]``: with probability ``p`` mix the statistics."""
    if p <= 0 or float(torch.rand(1, generator=generator, device=draw_device(generator))) > p:
        return x
    lam, perm = draw_mix(x.shape[0], alpha, generator)
    return mix_frequency_statistics(x, lam, perm, eps)


class FreqMixStyle(nn.Module):
    """Freq-MixStyle as a module: active in training mode only (identity in eval mode)."""

    def __init__(self, p: float = 0.4, alpha: float = 0.3, eps: float = EPS,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.p, self.alpha, self.eps, self.generator = p, alpha, eps, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return freq_mixstyle(x, self.p, self.alpha, self.eps, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}, eps={self.eps}"
