"""HEAR MLP probe: learns, is deterministic, selects on validation data, stops early, validates options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiobench.errors import ProtocolError
from audiobench.metrics import accuracy
from audiobench.protocols.mlp import MLPProbe, carve_validation
from audiobench.protocols.mlp_train import Data, build, train
from audiobench.registry import PROTOCOLS

SMALL = {"hidden_dim": [32], "grid_points": 2, "max_epochs": 45, "device": "cpu"}


def _blobs(n_per_class: int = 30, classes: int = 4, dim: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(classes, dim))
    y = np.repeat(np.arange(classes), n_per_class)
    return (centres[y] + rng.normal(0, 1, size=(len(y), dim))).astype(np.float32), y


def test_learns_a_separable_problem_and_is_deterministic() -> None:
    x, y = _blobs()
    test = np.arange(len(y)) % 4 == 0
    first = MLPProbe(seed=3, **SMALL)
    predicted, scores = first.fit_predict(x[~test], y[~test], x[test], num_classes=4)
    assert accuracy(y[test], predicted) >= 0.95
    assert scores.shape == (test.sum(), 4)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    again = MLPProbe(seed=3, **SMALL).fit_predict(x[~test], y[~test], x[test], num_classes=4)
    np.testing.assert_array_equal(again[0], predicted)
    np.testing.assert_array_equal(again[1], scores)
    chosen = first.describe()["chosen"][0]
    assert chosen["validation"].startswith("carved:") and chosen["validation_score"] >= 0.9


def test_leaves_the_callers_random_state_alone() -> None:
    x, y = _blobs(n_per_class=10)
    state = torch.get_rng_state()
    MLPProbe(seed=0, **SMALL).fit_predict(x, y, x)
    assert torch.equal(torch.get_rng_state(), state)


def test_original_label_values_without_num_classes() -> None:
    x, y = _blobs(classes=2, n_per_class=20)
    labels = np.where(y == 0, 7, 42)
    predicted, scores = MLPProbe(**SMALL).fit_predict(x, labels, x)
    assert set(predicted) <= {7, 42} and scores.shape == (len(y), 2)


def test_given_validation_set_and_first_split_selection() -> None:
    x, y = _blobs(seed=1)
    probe = MLPProbe(seed=0, **SMALL)
    for split in range(2):
        test = np.arange(len(y)) % 3 == split
        valid = np.arange(len(y)) % 3 == (split + 1) % 3
        train_rows = ~(test | valid)
        probe.fit_predict(x[train_rows], y[train_rows], x[test], num_classes=4, x_valid=x[valid], y_valid=y[valid])
    first, second = probe.describe()["chosen"]
    assert first["validation"] == second["validation"] == "given"
    point = ("hidden_layers", "hidden_dim", "dropout", "lr", "init")
    assert [first[k] for k in point] == [second[k] for k in point]  # HEAR: the first split's winner is reused
    assert [first[k] for k in point] in [[p[k] for k in point] for p in probe.grid()]


def test_multilabel_with_mask() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(160, 8)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0, x[:, 0] + x[:, 1] > 0], axis=1).astype(np.int8)
    mask = rng.random(y.shape) > 0.2
    probe = MLPProbe(seed=0, select_metric="mAP-hear", **{**SMALL, "lr": [3.2e-3], "max_epochs": 150})
    predicted, scores = probe.fit_predict(x[:120], y[:120], x[120:], num_classes=3, mask=mask[:120])
    assert scores.shape == (40, 3) and ((scores >= 0) & (scores <= 1)).all()
    assert ((scores > 0.5) == y[120:]).mean() > 0.85


def test_carve_validation_is_stratified_disjoint_and_seeded() -> None:
    y = np.repeat(np.arange(5), [10, 10, 2, 1, 7])
    keep, held = carve_validation(y, 0.2, seed=4)
    assert not set(keep) & set(held) and sorted(np.concatenate([keep, held])) == list(range(len(y)))
    assert set(np.unique(y[keep])) == set(range(5))  # every class keeps a training clip
    assert np.bincount(y[held], minlength=5).tolist() == [2, 2, 0, 0, 1]
    np.testing.assert_array_equal(carve_validation(y, 0.2, seed=4)[1], held)


def test_default_grid_is_the_hear_grid() -> None:
    probe = MLPProbe()
    points = probe.grid()
    assert len(points) == 8 and len({tuple(p.values()) for p in points}) == 8
    assert {p["hidden_layers"] for p in points} <= {1, 2} and {p["hidden_dim"] for p in points} == {1024}
    assert {p["lr"] for p in points} <= {3.2e-3, 1e-3, 3.2e-4, 1e-4}
    assert {p["init"] for p in points} <= {"xavier_uniform", "xavier_normal"}
    assert (probe.batch_size, probe.max_epochs, probe.patience, probe.check_every) == (1024, 500, 20, 3)
    assert PROTOCOLS.get("mlp-probe") is MLPProbe


def test_architecture() -> None:
    model = build({"hidden_layers": 2, "hidden_dim": 16, "dropout": 0.1, "init": "xavier_normal"}, 8, 3)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "BatchNorm1d", "Dropout", "ReLU"] * 2 + ["Linear"]
    assert model[-1].out_features == 3


def test_early_stopping_keeps_the_first_of_equal_scores() -> None:
    x, y = _blobs(n_per_class=10)
    point = {"hidden_layers": 1, "hidden_dim": 8, "dropout": 0.1, "lr": 0.0, "init": "xavier_uniform"}
    settings = {"batch_size": 16, "max_epochs": 300, "patience": 4, "check_every": 3}
    result = train(point, settings, Data(x, y), Data(x, y), 4, False, accuracy, "cpu", seed=0)
    assert result.epoch == 3  # lr 0: the score never strictly improves after the first check


def test_options_are_checked_and_coerced() -> None:
    assert MLPProbe(lr=["1e-4", 3.2e-4]).lr == (1e-4, 3.2e-4)  # YAML reads 1e-4 as a string
    with pytest.raises(ProtocolError, match="init"):
        MLPProbe(init=["kaiming"])
    with pytest.raises(ProtocolError, match="valid_fraction"):
        MLPProbe(valid_fraction=1.5)
    with pytest.raises(ProtocolError, match="hidden_layers"):
        MLPProbe(hidden_layers=[-1])
    with pytest.raises(ProtocolError, match="select"):
        MLPProbe(select="best")
