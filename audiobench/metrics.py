"""Metrics: thin wrappers over scikit-learn, one definition per metric.

Every metric has the signature ``metric(y_true, y_pred, scores, mask=None) -> float`` so a task card can
name any of them: ``y_true`` class indices ``[N]`` or multi-hot ``[N, C]``, ``y_pred`` predicted class
indices, ``scores`` per-class scores ``[N, C]``, ``mask`` ``[N, C]`` known labels (partially labelled tasks).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None = None,
             mask: np.ndarray | None = None) -> float:
    """Top-1 accuracy over clips (fraction): micro, every clip weighs the same."""
    return float(accuracy_score(y_true, y_pred))


def class_macro_accuracy(y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray | None = None,
                         mask: np.ndarray | None = None) -> float:
    """Mean over the classes present in ``y_true`` of the accuracy within the class (the DCASE ranking metric)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.unique(y_true)
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in classes])) if len(classes) else float("nan")


def _multi_hot(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    if y_true.ndim == 2:
        return y_true
    if scores.ndim != 2:
        raise ValueError(f"mAP needs per-class scores [N, C], got shape {scores.shape}")
    if y_true.size and (not np.issubdtype(y_true.dtype, np.integer) or y_true.min() < 0
                        or y_true.max() >= scores.shape[1]):
        raise ValueError(f"mAP: class indices must be integers in [0, {scores.shape[1]}) (one per column of the scores)")
    return np.eye(scores.shape[1], dtype=int)[y_true]


def mean_average_precision(y_true: np.ndarray, y_pred: np.ndarray | None, scores: np.ndarray,
                           mask: np.ndarray | None = None) -> float:
    """mAP: mean over classes of sklearn's per-class average precision.

    ``y_true`` is multi-hot ``[N, C]``, or class indices ``[N]`` (multiclass; one-hot encoded to the ``C``
    columns of ``scores``). Classes without a positive example (among the known labels) are skipped: their
    AP is undefined (scikit-learn would count them as 0). With ``mask``, unknown labels weigh 0 (OpenMIC's
    masked mAP: ``average_precision_score(y, score, sample_weight=mask)`` per class).
    """
    scores = np.asarray(scores)
    hot = _multi_hot(np.asarray(y_true), scores)
    known = np.ones_like(hot, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    values = [average_precision_score(hot[:, c], scores[:, c], sample_weight=known[:, c].astype(float))
              for c in range(hot.shape[1]) if (hot[:, c].astype(bool) & known[:, c]).any()]
    return float(np.mean(values)) if values else float("nan")
