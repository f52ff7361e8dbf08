"""HEAR ranking metrics: hand-computed values, scikit-learn on fixed inputs, and the conventions for classes
that cannot be scored."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from audiobench.metrics import mean_average_precision
from audiobench.metrics_hear import (d_prime_of_mean_auc, d_prime_per_class, macro_auc,
                                     mean_average_precision_zero_filled, per_class_auc)
from audiobench.registry import METRICS

# Three classes over four clips. Class 0: positives score 0.9 and 0.3, negatives 0.8 and 0.1 -> AUC 3/4,
# AP (1/1 + 2/3) / 2. Class 1: one negative (0.6) against positives 0.7, 0.5, 0.9 -> AUC 2/3,
# AP (1 + 1 + 3/4) / 3. Class 2 has no positive: no AUC, AP 0 (zero-filled) or left out (mAP).
Y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 1, 0]])
S = np.array([[0.9, 0.6, 0.2], [0.8, 0.7, 0.1], [0.3, 0.5, 0.4], [0.1, 0.9, 0.3]])
AUC = (3 / 4, 2 / 3)
AP = ((1 + 2 / 3) / 2, (1 + 1 + 3 / 4) / 3)
PPF = (0.6744897501960817, 0.4307272992954576)  # standard normal quantiles of 3/4 and 2/3 (tables)


def test_hand_computed_values() -> None:
    np.testing.assert_allclose(per_class_auc(Y, S), AUC)
    assert macro_auc(Y, None, S) == pytest.approx(np.mean(AUC))
    assert d_prime_per_class(Y, None, S) == pytest.approx(np.sqrt(2) * np.mean(PPF))
    assert d_prime_of_mean_auc(Y, None, S) == pytest.approx(np.sqrt(2) * norm.ppf(np.mean(AUC)))
    assert mean_average_precision_zero_filled(Y, None, S) == pytest.approx((AP[0] + AP[1] + 0.0) / 3)
    assert mean_average_precision(Y, None, S) == pytest.approx(np.mean(AP))  # audiobench mAP skips class 2


def test_zero_filled_map_is_the_installed_sklearn_macro_ap() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No positive class found in y_true"
        per_class = average_precision_score(Y, S, average=None)
    assert per_class[2] == 0.0  # scikit-learn >= 1.1: a class without positives has AP 0
    assert mean_average_precision_zero_filled(Y, None, S) == pytest.approx(float(np.mean(per_class)))


def test_against_sklearn_on_fixed_random_inputs() -> None:
    rng = np.random.default_rng(7)
    y = (rng.random((60, 5)) < 0.3).astype(int)
    y[0], y[1] = 1, 0  # every class has a positive and a negative
    scores = np.clip(y * 0.3 + rng.random((60, 5)), 0, 1)
    assert macro_auc(y, None, scores) == pytest.approx(roc_auc_score(y, scores, average="macro"))
    expected = np.mean(np.sqrt(2) * norm.ppf(roc_auc_score(y, scores, average=None)))
    assert d_prime_per_class(y, None, scores) == pytest.approx(expected)
    assert mean_average_precision_zero_filled(y, None, scores) == pytest.approx(
        average_precision_score(y, scores, average="macro"))


def test_multiclass_targets_are_one_hot_encoded() -> None:
    rng = np.random.default_rng(3)
    y = np.array([0, 1, 2, 1, 0, 2, 2, 1])
    scores = rng.dirichlet(np.ones(3), size=len(y))
    hot = np.eye(3, dtype=int)[y]
    assert macro_auc(y, scores.argmax(1), scores) == pytest.approx(roc_auc_score(hot, scores, average="macro"))
    assert mean_average_precision_zero_filled(y, None, scores) == pytest.approx(
        average_precision_score(hot, scores, average="macro"))
    with pytest.raises(ValueError, match="class indices"):
        macro_auc(np.array([0, 3]), None, scores[:2])


def test_mask_leaves_unknown_labels_out() -> None:
    mask = np.ones_like(Y, dtype=bool)
    mask[1, 1] = False  # hide the positive scored 0.7 of class 1: positives 0.5, 0.9 vs negative 0.6 -> AUC 1/2
    np.testing.assert_allclose(per_class_auc(Y, S, mask), [3 / 4, 1 / 2])
    mask[:, 0] = False  # class 0 unknown everywhere: no AUC, AP 0
    assert macro_auc(Y, None, S, mask) == pytest.approx(0.5)
    expected_ap = average_precision_score(Y[:, 1], S[:, 1], sample_weight=mask[:, 1].astype(float))
    assert mean_average_precision_zero_filled(Y, None, S, mask) == pytest.approx(expected_ap / 3)


def test_undefined_and_infinite_cases() -> None:
    no_auc = np.array([[1, 0], [1, 0]])
    assert np.isnan(macro_auc(no_auc, None, np.array([[0.3, 0.2], [0.6, 0.1]])))
    assert np.isnan(d_prime_of_mean_auc(no_auc, None, np.array([[0.3, 0.2], [0.6, 0.1]])))
    perfect = np.array([[1, 0], [0, 1]])
    assert d_prime_per_class(perfect, None, np.array([[0.9, 0.1], [0.2, 0.8]])) == np.inf  # AUC 1, as HEAR


def test_registered_names() -> None:
    assert METRICS.get("aucroc") is macro_auc
    assert METRICS.get("d-prime") is d_prime_per_class
    assert METRICS.get("d-prime-of-mean-auc") is d_prime_of_mean_auc
    assert METRICS.get("mAP-hear") is mean_average_precision_zero_filled
