"""Class-balanced sampling of multi-label clips, as the EfficientAT/PaSST AudioSet recipes do.

Weights (EAT ``get_ft_cls_balanced_sample_weights``): with ``count[c]`` the number of training clips labelled
``c``, a clip's weight is the sum over its classes of ``1 / (count[c] + offset)`` (``offset`` 100 there; their
extra factor 1000 does not change the sampling). Clips without any label get weight 0 and are never drawn.
Each epoch draws ``num_samples`` clips (100 000 in EAT) from these weights, without replacement by default
as in both code bases (``WeightedRandomSampler(..., replacement=False)``).
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from audiobench.errors import AudiobenchError

_REDUCTIONS = {"sum": lambda weights: weights.sum(dim=1), "max": lambda weights: weights.max(dim=1).values}


def class_balanced_weights(targets: Any, offset: float = 100.0, reduce: str = "sum") -> torch.Tensor:
    """Per-clip sampling weights ``[N]`` (float64) from multi-hot targets ``[N, C]`` (array or tensor, 0/1).

    ``reduce="max"`` takes the rarest class's weight instead of the sum (EAT's ``sample_weight_sum=False``).
    """
    labels = torch.as_tensor(np.asarray(targets) if not isinstance(targets, torch.Tensor) else targets)
    if labels.dim() != 2:
        raise AudiobenchError(f"Targets must be multi-hot [clips, classes], got shape {tuple(labels.shape)}.",
                              hint="Turn label lists into a 0/1 matrix with one row per clip.")
    if reduce not in _REDUCTIONS:
        raise AudiobenchError(f"Unknown weight reduction {reduce!r}.", hint=f"Use one of {sorted(_REDUCTIONS)}.")
    if offset < 0:
        raise AudiobenchError(f"offset must be >= 0, got {offset}.", hint="EfficientAT and PaSST use 100.")
    present = (labels > 0).to(torch.float64).cpu()
    per_class = 1.0 / (present.sum(dim=0) + offset)  # classes with no clip never contribute
    return _REDUCTIONS[reduce](present * per_class)


class ClassBalancedSampler(Sampler[int]):
    """Draws ``num_samples`` clip indices per epoch with probability proportional to ``weights``.

    Draws are reproducible: epoch ``e`` uses a generator seeded from ``(seed, e)``. The epoch advances by one
    after each ``iter()`` (one per DataLoader epoch); :meth:`set_epoch` sets it explicitly.
    """

    def __init__(self, weights: Any, num_samples: int, replacement: bool = False, seed: int = 0) -> None:
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))
        if self.weights.dim() != 1 or not bool(torch.isfinite(self.weights).all()) or bool((self.weights < 0).any()):
            raise AudiobenchError("Sampling weights must be a 1-D array of finite values >= 0.",
                                  hint="Compute them with class_balanced_weights(targets).")
        available = int((self.weights > 0).sum())
        if num_samples <= 0 or available == 0:
            raise AudiobenchError(f"Cannot draw {num_samples} samples from {available} clips with weight > 0.",
                                  hint="Pass num_samples > 0 and targets in which some clip has a label.")
        if not replacement and num_samples > available:
            raise AudiobenchError(f"Cannot draw {num_samples} distinct clips: only {available} have weight > 0.",
                                  hint="Lower num_samples or pass replacement=True.")
        self.num_samples = int(num_samples)
        self.replacement = bool(replacement)
        self.seed = int(seed)
        self.epoch = 0

    @classmethod
    def from_targets(cls, targets: Any, num_samples: int, offset: float = 100.0, reduce: str = "sum",
                     replacement: bool = False, seed: int = 0) -> "ClassBalancedSampler":
        """Sampler with :func:`class_balanced_weights` of multi-hot ``targets`` ``[N, C]``."""
        return cls(class_balanced_weights(targets, offset, reduce), num_samples, replacement, seed)

    def set_epoch(self, epoch: int) -> None:
        """Use the draws of ``epoch`` on the next iteration."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        state = np.random.SeedSequence([self.seed, self.epoch]).generate_state(2, dtype=np.uint32)
        generator = torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
        self.epoch += 1
        indices = torch.multinomial(self.weights, self.num_samples, self.replacement, generator=generator)
        return iter(indices.tolist())

    def __len__(self) -> int:
        return self.num_samples
