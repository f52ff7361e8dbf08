"""SpecAugment-style frequency and time masking (torchaudio ``FrequencyMasking``/``TimeMasking`` semantics).

Spectrograms are ``[..., F, T]`` with at least one leading axis, e.g. ``[B, 1, F, T]`` or ``[B, F, T]``; each
leading index (each example, per channel) gets its own mask, as torchaudio's ``iid_masks=True``. For a maximum
width ``m`` the mask covers ``[start, start + floor(v))`` with ``v = u1 * m`` and
``start = floor(u2 * (size - v))``, ``u1, u2 ~ U[0, 1)``: widths lie in ``0 .. m - 1``. The masked value is 0
(after the recipes' normalisation). PaSST applies the frequency mask first, then the time mask.
"""

from __future__ import annotations

import torch

from audiobench.errors import AudiobenchError
from audiobench.finetune.mixup import draw_device


def mask_along_axis(spec: torch.Tensor, max_width: int, axis: int, generator: torch.Generator | None = None,
                    mask_value: float = 0.0) -> torch.Tensor:
    """One random band per example along ``axis`` (-2: frequency, -1: time) set to ``mask_value``.

    ``max_width`` 0 returns ``spec`` unchanged (no random numbers are drawn). The input is not modified.
    """
    if spec.dim() < 3:
        raise AudiobenchError(f"Spectrogram batch must be [B, F, T] or [B, 1, F, T], got shape {tuple(spec.shape)}.",
                              hint="Add a batch axis: spec.unsqueeze(0).")
    if axis not in (-2, -1, spec.dim() - 2, spec.dim() - 1):
        raise AudiobenchError(f"Masking axis must be the frequency (-2) or time (-1) axis, got {axis}.",
                              hint="Use frequency_mask or time_mask.")
    if max_width < 0:
        raise AudiobenchError(f"Maximum mask width must be >= 0, got {max_width}.",
                              hint="PaSST uses freqm 48 and timem 192 on AudioSet; 0 switches masking off.")
    if max_width == 0:
        return spec
    axis = axis - spec.dim() if axis >= 0 else axis
    leading, size = spec.shape[:-2], spec.shape[axis]
    device = draw_device(generator)
    width = torch.rand(leading, generator=generator, device=device) * max_width
    start = (torch.rand(leading, generator=generator, device=device) * (size - width)).floor()
    end = start + width.floor()
    positions = torch.arange(size, device=device)
    inside = (positions >= start[..., None]) & (positions < end[..., None])  # [..., size]
    inside = inside[..., :, None] if axis == -2 else inside[..., None, :]
    return spec.masked_fill(inside.to(spec.device), mask_value)


def frequency_mask(spec: torch.Tensor, freqm: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One frequency band of up to ``freqm - 1`` bins per example set to 0."""
    return mask_along_axis(spec, freqm, -2, generator)


def time_mask(spec: torch.Tensor, timem: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One span of up to ``timem - 1`` frames per example set to 0."""
    return mask_along_axis(spec, timem, -1, generator)


def spec_augment(spec: torch.Tensor, freqm: int = 0, timem: int = 0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Frequency mask then time mask, as in the PaSST/EfficientAT front-end (0 switches one off)."""
    return time_mask(frequency_mask(spec, freqm, generator), timem, generator)
