"""The ranking metrics of the HEAR benchmark (hear-eval-kit ``heareval/score.py``) and of AST/PSLA.

Every metric has the audiobench signature ``metric(y_true, y_pred, scores, mask=None) -> float``:
``y_true`` class indices ``[N]`` (multiclass; one-hot encoded to the ``C`` columns of ``scores``) or
multi-hot ``[N, C]``; ``scores`` per-class scores ``[N, C]`` (softmax or sigmoid outputs); ``mask``
``[N, C]`` known labels (unknown labels are left out of a class's ranking). ``y_pred`` is not used.

Conventions where a class cannot be scored (documented per function):

* AUC needs both a positive and a negative example of a class. hear-eval-kit calls
  ``roc_auc_score(..., average="macro"/None)`` on all classes at once, which raised ``ValueError`` with the
  scikit-learn of 2021 and made the whole split's ``aucroc``/``d_prime`` NaN (recent scikit-learn warns and
  gives NaN for the class). Here such classes are left out of the mean instead. On the HEAR k-fold tasks this
  never differs: hear-preprocess re-draws the folds until every fold holds every label.
* AP of a class without a positive example is **0** (``mean_average_precision_zero_filled``): the
  convention of scikit-learn >= 1.1 (PR #19085 sets recall to 1, so AP = 0); scikit-learn 0.24/1.0, which
  HEAR 2021 ran, gave NaN for such a class. It is written out here, so it does not depend on the installed
  scikit-learn. :func:`audiobench.metrics.mean_average_precision` (``mAP``) skips those classes instead.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

SQRT2 = float(np.sqrt(2.0))


def _one_hot(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``y_true`` as a ``[N, C]`` 0/1 matrix matching the columns of ``scores``."""
    if scores.ndim != 2:
        raise ValueError(f"HEAR metrics need per-class scores [N, C], got shape {scores.shape}")
    if y_true.ndim == 2:
        if y_true.shape != scores.shape:
            raise ValueError(f"targets {y_true.shape} and scores {scores.shape} differ in shape")
        return y_true.astype(bool)
    if y_true.size and (not np.issubdtype(y_true.dtype, np.integer) or y_true.min() < 0
                        or y_true.max() >= scores.shape[1]):
        raise ValueError(f"class indices must be integers in [0, {scores.shape[1]}) (one per column of the scores)")
    hot = np.zeros(scores.shape, dtype=bool)
    hot[np.arange(len(y_true)), y_true] = True
    return hot


def _columns(y_true: np.ndarray, scores: np.ndarray,
             mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=float)
    hot = _one_hot(np.asarray(y_true), scores)
    known = np.ones(hot.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    return hot, scores, known


def per_class_auc(y_true: np.ndarray, scores: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """ROC AUC of every class that has a positive and a negative (known) example; others are left out."""
    hot, scores, known = _columns(y_true, scores, mask)
    values = []
    for c in range(hot.shape[1]):
        labels = hot[known[:, c], c]
        if labels.any() and not labels.all():
            values.append(roc_auc_score(labels, scores[known[:, c], c]))
    return np.array(values, dtype=float)


def macro_auc(y_true: np.ndarray, y_pred: np.ndarray | None, scores: np.ndarray,
              mask: np.ndarray | None = None) -> float:
    """HEAR ``aucroc``: mean over classes of the ROC AUC (classes lacking a positive or a negative are left out)."""
    values = per_class_auc(y_true, scores, mask)
    return float(values.mean()) if len(values) else float("nan")


def d_prime_per_class(y_true: np.ndarray, y_pred: np.ndarray | None, scores: np.ndarray,
                      mask: np.ndarray | None = None) -> float:
    """HEAR ``d_prime``: per class ``sqrt(2) * Phi^-1(AUC)``, then the mean over classes.

    Classes are those of :func:`macro_auc`. A class with AUC 1 has d' = +inf and so has the mean, as in
    hear-eval-kit.
    """
    values = per_class_auc(y_true, scores, mask)
    return float(np.mean(SQRT2 * norm.ppf(values))) if len(values) else float("nan")


def d_prime_of_mean_auc(y_true: np.ndarray, y_pred: np.ndarray | None, scores: np.ndarray,
                        mask: np.ndarray | None = None) -> float:
    """AST/PSLA ``d_prime``: ``sqrt(2) * Phi^-1(mean AUC)`` — the d' of the macro AUC, not the mean d'."""
    auc = macro_auc(y_true, y_pred, scores, mask)
    return float(SQRT2 * norm.ppf(auc)) if np.isfinite(auc) else float("nan")


def mean_average_precision_zero_filled(y_true: np.ndarray, y_pred: np.ndarray | None, scores: np.ndarray,
                                       mask: np.ndarray | None = None) -> float:
    """HEAR ``mAP``: mean over **all** ``C`` classes of scikit-learn's average precision; a class without a
    (known) positive example counts as AP 0 (see the module docstring). With ``mask``, unknown labels weigh 0."""
    hot, scores, known = _columns(y_true, scores, mask)
    if hot.shape[1] == 0:
        return float("nan")
    values = np.zeros(hot.shape[1])
    for c in range(hot.shape[1]):
        if (hot[:, c] & known[:, c]).any():
            values[c] = average_precision_score(hot[:, c], scores[:, c], sample_weight=known[:, c].astype(float))
    return float(values.mean())
