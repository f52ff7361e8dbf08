"""Metrics: thin wrappers over scikit-learn, one definition per metric.

Every metric has the signature ``metric(y_true, y_pred, scores) -> float`` so a task card can name
any of them: ``y_pred`` are predicted class indices, ``scores`` per-class scores ``[N, C]``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None = None) -> float:
    """Top-1 accuracy over clips (fraction)."""
    return float(accuracy_score(y_true, y_pred))


def mean_average_precision(y_true: np.ndarray, y_pred: np.ndarray | None, scores: np.ndarray) -> float:
    """mAP: mean over classes of sklearn's per-class average precision.

    ``y_true`` is multi-hot ``[N, C]``, or class indices ``[N]`` (multiclass; one-hot encoded to the ``C``
    columns of ``scores``); classes without a positive example are skipped.
    """
    scores = np.asarray(scores)
    y_true = np.asarray(y_true)
    if y_true.ndim == 1:
        if scores.ndim != 2:
            raise ValueError(f"mAP needs per-class scores [N, C], got shape {scores.shape}")
        if y_true.size and (not np.issubdtype(y_true.dtype, np.integer) or y_true.min() < 0
                            or y_true.max() >= scores.shape[1]):
            raise ValueError(f"mAP: class indices must be integers in [0, {scores.shape[1]}) "
                             f"(one per column of the scores)")
        y_true = np.eye(scores.shape[1], dtype=int)[y_true]
    keep = y_true.sum(axis=0) > 0
    return float(np.mean(average_precision_score(y_true[:, keep], scores[:, keep], average=None)))
