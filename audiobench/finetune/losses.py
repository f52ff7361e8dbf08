"""Multi-label training losses of the recipes: BCE with (mixed) soft targets, and masked BCE (OpenMIC).

OpenMIC labels are partial: ``mask [B, C]`` says which (clip, class) labels are known. The EfficientAT
and PaSST ``ex_openmic.py`` scripts multiply the element-wise BCE by the mask and take ``.mean()``
over **all** B x C entries (unknown labels count as zeros in the mean); ``normalize="known"`` (the
default here) divides by the number of known labels instead, so the loss scale does not depend on how
many labels a batch happens to know. The two differ by a per-batch factor; pass ``normalize="all"``
to reproduce the originals exactly. Both scripts binarise OpenMIC's ``Y_true`` at 0.5 first, and with
mixup they keep the first clip's mask only.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from audiobench.errors import AudiobenchError
from audiobench.finetune.mixup import mix_targets

__all__ = ["bce_with_targets", "mixed_bce", "masked_bce", "MASK_NORMALIZATIONS"]


def bce_with_targets(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean BCE-with-logits against soft (e.g. mixed) targets ``[B, C]`` in [0, 1]."""
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))


def mixed_bce(logits: torch.Tensor, targets: torch.Tensor, perm: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """BCE against mixup targets ``lam * y + (1 - lam) * y[perm]`` (EfficientAT/PaSST multi-label recipes)."""
    return bce_with_targets(logits, mix_targets(targets, perm, lam))


#: How the masked element-wise losses are averaged: over the known labels, or over all B x C entries.
MASK_NORMALIZATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "known": lambda losses, mask: losses.sum() / mask.sum().clamp(min=1.0),
    "all": lambda losses, mask: losses.mean(),
}


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor | None = None,
               normalize: str = "known") -> torch.Tensor:
    """BCE-with-logits counting only known labels (``mask`` 1/True); None = every label known.

    A batch without any known label gives 0 (with a gradient of zeros).
    """
    if normalize not in MASK_NORMALIZATIONS:
        raise AudiobenchError(f"Unknown masked-BCE normalization {normalize!r}.",
                              hint=f"Use one of: {', '.join(MASK_NORMALIZATIONS)}.")
    losses = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    if mask is None:
        return losses.mean()
    if mask.shape != losses.shape:
        raise AudiobenchError(f"Label mask of shape {tuple(mask.shape)} does not match the logits "
                              f"{tuple(losses.shape)}.", hint="Pass one known/unknown flag per clip and class.")
    mask = mask.to(device=losses.device, dtype=losses.dtype)
    return MASK_NORMALIZATIONS[normalize](losses * mask, mask)
