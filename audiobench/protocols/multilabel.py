"""Multi-label linear probe: one logistic output per class, trained jointly with (masked) BCE.

The objective is scikit-learn's logistic regression applied to every class at once: mean binary cross
entropy over the known labels plus ``||W||^2 / (2 C N)`` (``C`` as in scikit-learn, ``N`` training clips),
minimised with full-batch L-BFGS on standardised features, in float64 (in float32 the solver stops where
rounding, which differs between CPUs, lets it, as the single-label probe did; see
:mod:`audiobench.protocols.probe`). Unknown labels (``mask`` False, OpenMIC) weigh 0.
"""

from __future__ import annotations

import numpy as np


def fit_predict_multilabel(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, C: float = 1.0,
                           max_iter: int = 1000, seed: int = 0, mask: np.ndarray | None = None) -> np.ndarray:
    """Sigmoid scores ``[N_test, C]`` of a linear multi-label classifier trained on ``(x_train, y_train)``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    x_train = np.asarray(x_train, dtype=np.float64)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0
    x = torch.from_numpy((x_train - mean) / std)
    y = torch.from_numpy(np.asarray(y_train, dtype=np.float64))
    known = torch.ones_like(y) if mask is None else torch.from_numpy(np.asarray(mask, dtype=np.float64))
    weight = (torch.randn(x.shape[1], y.shape[1], generator=generator, dtype=torch.float64) * 0.01).requires_grad_()
    bias = torch.zeros(y.shape[1], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-6, tolerance_change=1e-9)
    penalty = 1.0 / (2.0 * float(C) * max(len(x), 1))

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        losses = torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, y, reduction="none")
        loss = (losses * known).sum() / known.sum().clamp(min=1.0) + penalty * weight.square().sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        test = torch.from_numpy((np.asarray(x_test, dtype=np.float64) - mean) / std)
        return torch.sigmoid(test @ weight + bias).numpy().astype(np.float32)
