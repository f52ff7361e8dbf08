"""Linear probe, split protocols, summaries and metrics."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from audiobench.datasets.base import OfficialList, list_sha256, Clip, DatasetIndex
from audiobench.errors import DatasetError, ProtocolError
from audiobench.metrics import accuracy, mean_average_precision
from audiobench.protocols.evaluate import evaluate_probe
from audiobench.protocols.probe import AUTO_C_GRID, LinearProbe
from audiobench.protocols.splits import cross_validation, official_folds
from audiobench.results import summarise


def _blobs(n_per_class: int = 20, classes: int = 3, dim: int = 8, seed: int = 0, spread: float = 1.5):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, size=(classes, dim))
    y = np.repeat(np.arange(classes), n_per_class)
    x = centres[y] + rng.normal(0, spread, size=(len(y), dim))
    return x.astype(np.float32), y


def _index(labels, folds=None) -> DatasetIndex:
    clips = [Clip(clip_id=f"c{i}", path=Path(f"c{i}.wav"), label=int(label),
                  fold=None if folds is None else int(folds[i])) for i, label in enumerate(labels)]
    expected: dict[int, int] = {}
    for clip in clips:
        if clip.fold is not None:
            expected[clip.fold] = expected.get(clip.fold, 0) + 1
    rows = [(c.clip_id, c.label, c.fold) for c in clips]
    official = OfficialList(total=len(clips), per_fold=expected, sha256=list_sha256(rows), source="toy")
    return DatasetIndex(name="toy", classes=[str(c) for c in sorted(set(labels))], clips=clips,
                        expected_per_fold=expected, official_list=official, listed_sha256=list_sha256(rows))


# --------------------------------------------------------------------------- probe


def test_probe_is_deterministic_and_learns() -> None:
    x, y = _blobs(seed=1)
    train, test = np.arange(len(y)) % 4 != 0, np.arange(len(y)) % 4 == 0
    first = LinearProbe(seed=3).fit_predict(x[train], y[train], x[test])
    second = LinearProbe(seed=3).fit_predict(x[train], y[train], x[test])
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    predicted, scores = first
    assert scores.shape == (test.sum(), 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(predicted, scores.argmax(axis=1))
    assert accuracy(y[test], predicted) > 0.8


def test_probe_is_solved_to_its_optimum_not_stopped_early() -> None:
    """The score must be the optimum's: a probe stopped early (scikit-learn's L-BFGS default, tolerance 1e-4)
    records where the solver stopped, and last-bit differences of the features between CPUs move that."""
    x, y = _blobs(n_per_class=12, classes=10, dim=64, seed=4, spread=4.0)  # nearly separable: D > N / K
    probe = LinearProbe(C=1.0)
    pipeline = probe._pipeline(1.0).fit(x.astype(np.float64), y)  # as fit_predict does
    z, head = pipeline[0].transform(x).astype(np.float64), pipeline[-1]
    logits = z @ head.coef_.T + head.intercept_
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    residual = p - np.eye(10)[y]
    # scikit-learn's objective: C * sum of cross-entropies + ||W||^2 / 2 (intercept not penalised)
    gradient = np.concatenate([(1.0 * residual.T @ z + head.coef_).ravel(), 1.0 * residual.sum(axis=0)])
    assert np.abs(gradient).max() / len(y) < 1e-6  # per-sample scale, as the solver's tolerance

    early = LogisticRegression(C=1.0, max_iter=1000).fit(z, y)  # the default the probe must not be
    early_logits = z @ early.coef_.T + early.intercept_
    early_p = np.exp(early_logits - early_logits.max(axis=1, keepdims=True))
    early_p /= early_p.sum(axis=1, keepdims=True)
    early_gradient = (early_p - np.eye(10)[y]).T @ z + early.coef_
    assert np.abs(early_gradient).max() / len(y) > 1e-5  # the check above can tell the two apart


@dataclasses.dataclass
class _MeetingProbe(LinearProbe):
    """Its first two fits wait for each other: they only get past the barrier when run at the same time."""

    meeting: Any = None  # (barrier, lock, [calls]), shared by the for_split copies

    def fit_predict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        barrier, lock, calls = self.meeting
        with lock:
            calls[0] += 1
            first_two = calls[0] <= 2
        if first_two:
            barrier.wait()
        return super().fit_predict(*args, **kwargs)


@pytest.mark.parametrize("c", [1.0, "auto"])
def test_splits_fitted_in_parallel_threads_give_the_sequential_predictions(c: float | str) -> None:
    x, y = _blobs(n_per_class=30, classes=4, dim=16, seed=5)
    index = _index(y)
    plan = cross_validation(index, 4, seed=0)
    meeting = (threading.Barrier(2, timeout=20), threading.Lock(), [0])
    in_threads = _MeetingProbe(C=c, meeting=meeting)
    parallel = evaluate_probe(in_threads, x, index, plan, threads=2)  # a sequential loop would time out
    in_turn = LinearProbe(C=c)
    sequential = evaluate_probe(in_turn, x, index, plan, threads=1)
    assert list(parallel.clip_id) == list(sequential.clip_id) and list(parallel.split) == list(sequential.split)
    np.testing.assert_array_equal(parallel.scores, sequential.scores)
    assert in_threads.describe()["C_selection"] == in_turn.describe()["C_selection"]
    assert in_threads.chosen == in_turn.chosen and len(in_turn.chosen) == (4 if c == "auto" else 0)  # split order
    assert c != "auto" or len(set(in_turn.chosen)) > 1  # the order is visible (here 0.01, 0.01, 0.1, 0.1)
    assert in_threads.iterations == in_turn.iterations and len(in_turn.iterations) == 4
    assert in_turn.describe()["converged"] is True


def test_a_probe_stopped_by_max_iter_says_it_did_not_converge() -> None:
    x, y = _blobs(n_per_class=12, classes=10, dim=64, seed=4, spread=4.0)
    probe = LinearProbe(max_iter=2)
    with pytest.warns(Warning, match="converge"):
        probe.fit_predict(x, y, x)
    assert probe.describe()["converged"] is False and probe.describe()["solver_iterations"] == [2]


def test_parallel_splits_only_for_single_label_fits_on_one_blas_thread() -> None:
    assert LinearProbe().parallel_splits(100 * 16, multilabel=False)
    assert LinearProbe(C="auto").parallel_splits(100, multilabel=False)
    assert not LinearProbe().parallel_splits(100, multilabel=True)  # torch L-BFGS has its own threads
    assert not LinearProbe().parallel_splits(10**8, multilabel=False)  # large fits use every BLAS thread


def test_probe_returns_original_label_values() -> None:
    x, y = _blobs(classes=2, seed=2, spread=0.5)
    labels = np.where(y == 0, 7, 42)
    predicted, _ = LinearProbe().fit_predict(x, labels, x)
    assert set(predicted) <= {7, 42}


def test_auto_c_records_the_choice_per_split_and_ignores_test_data() -> None:
    x, y = _blobs(n_per_class=15, seed=4, spread=2.5)
    train, test = np.arange(len(y)) % 3 != 0, np.arange(len(y)) % 3 == 0
    probe = LinearProbe(C="auto", seed=0)
    predicted, scores = probe.fit_predict(x[train], y[train], x[test])
    assert len(probe.chosen) == 1 and probe.chosen[0] in AUTO_C_GRID

    # permuting the test rows permutes the predictions and nothing else
    order = np.random.default_rng(0).permutation(test.sum())
    permuted = LinearProbe(C="auto", seed=0)
    p_pred, p_scores = permuted.fit_predict(x[train], y[train], x[test][order])
    np.testing.assert_array_equal(p_pred, predicted[order])
    np.testing.assert_allclose(p_scores, scores[order], rtol=1e-12, atol=1e-12)
    assert permuted.chosen == probe.chosen

    # replacing the test data by noise changes neither the chosen C nor the model
    noisy = LinearProbe(C="auto", seed=0)
    noise = np.random.default_rng(1).normal(0, 100, size=x[test].shape)
    noisy.fit_predict(x[train], y[train], noise)
    again = noisy.fit_predict(x[train], y[train], x[test])
    assert noisy.chosen == probe.chosen * 2
    np.testing.assert_allclose(again[1], scores, rtol=1e-12, atol=1e-12)

    description = noisy.describe()
    assert description["chosen_C"] == noisy.chosen and description["C"] == "auto"
    assert "training split" in description["C_selection"]
    assert "chosen_C" not in LinearProbe(C=0.5).describe()


# --------------------------------------------------------------------------- splits


def test_cross_validation_is_a_stratified_partition() -> None:
    labels = np.repeat([0, 1, 2, 3], [12, 9, 7, 5])
    index = _index(labels)
    plan = cross_validation(index, 4, seed=0)
    assert not plan.official and "NON-OFFICIAL" in plan.description and "seed 0" in plan.description
    assert [s.name for s in plan.splits] == ["cv1", "cv2", "cv3", "cv4"]
    tests = [set(s.test.tolist()) for s in plan.splits]
    for i, split in enumerate(plan.splits):
        assert set(split.train.tolist()).isdisjoint(tests[i])
        assert set(split.train.tolist()) | tests[i] == set(range(len(labels)))
        for j in range(i):
            assert tests[i].isdisjoint(tests[j])
        counts = np.bincount(labels[split.test], minlength=4)
        expected = np.bincount(labels) / 4
        assert np.all(np.abs(counts - expected) < 1)  # stratified: every class within one clip of its share
    assert set().union(*tests) == set(range(len(labels)))


def test_cross_validation_depends_on_the_seed_only() -> None:
    index = _index(np.repeat([0, 1], 10))
    a, b, c = (cross_validation(index, 2, seed=s) for s in (0, 0, 1))
    assert all(np.array_equal(x.test, y.test) for x, y in zip(a.splits, b.splits))
    assert not all(np.array_equal(x.test, y.test) for x, y in zip(a.splits, c.splits))


def test_cross_validation_refuses_impossible_k() -> None:
    index = _index(np.repeat([0, 1], [6, 2]))
    with pytest.raises(ProtocolError, match="at least 2 folds"):
        cross_validation(index, 1, seed=0)
    with pytest.raises(ProtocolError, match="smallest present class has 2") as info:
        cross_validation(index, 3, seed=0)
    assert "--cv" in info.value.hint


def test_official_folds() -> None:
    labels = np.tile([0, 1], 6)
    folds = np.repeat([1, 2, 3], 4)
    index = _index(labels, folds)
    plan = official_folds(index, [1, 2, 3])
    assert plan.official and [s.name for s in plan.splits] == ["fold1", "fold2", "fold3"]
    for fold, split in zip([1, 2, 3], plan.splits):
        np.testing.assert_array_equal(split.test, np.flatnonzero(folds == fold))
        np.testing.assert_array_equal(split.train, np.flatnonzero(folds != fold))
    with pytest.raises(DatasetError, match="complete folds: 1, 2, 3"):
        official_folds(index, [1, 2, 3, 4])


def test_official_only_on_the_official_list() -> None:
    index = _index(np.tile([0, 1], 6), np.repeat([1, 2, 3], 4))
    index.listed_sha256 = "another list"
    plan = official_folds(index, [1, 2, 3])
    assert not plan.official and "NON-OFFICIAL" in plan.description and "not the official list" in plan.description
    index.official_list = None  # a dataset without an official list is never official
    assert not official_folds(index, [1, 2, 3]).official


# --------------------------------------------------------------------------- summaries and metrics


def test_summarise_mean_and_population_std() -> None:
    summary = summarise({"fold1": 0.5, "fold2": 1.0})
    assert summary == {"mean": 0.75, "std": 0.25, "std_ddof": 0, "per_split": {"fold1": 0.5, "fold2": 1.0}}
    single = summarise({"only": 0.9})
    assert single["mean"] == 0.9 and single["std"] == 0.0


def test_accuracy() -> None:
    assert accuracy(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0])) == 0.75
    assert accuracy(np.array([2, 2]), np.array([2, 2]), None) == 1.0


def test_mean_average_precision_by_hand() -> None:
    y_true = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 1, 0]])
    perfect = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.5], [0.8, 0.3, 0.5], [0.1, 0.7, 0.5]])
    assert mean_average_precision(y_true, None, perfect) == pytest.approx(1.0)
    # class 0 ranked pos, neg, pos, neg -> AP = (1/1 + 2/3) / 2 = 5/6
    # class 1 ranked neg, neg, pos, pos -> AP = (1/3 + 2/4) / 2 = 5/12
    # class 2 has no positive clip and is skipped -> mAP = (5/6 + 5/12) / 2 = 0.625
    scores = np.array([[0.9, 0.4, 0.1], [0.8, 0.1, 0.2], [0.7, 0.3, 0.3], [0.1, 0.2, 0.4]])
    assert mean_average_precision(y_true, None, scores) == pytest.approx(0.625)
    from sklearn.metrics import average_precision_score

    assert average_precision_score(y_true[:, 0], scores[:, 0]) == pytest.approx(5 / 6)


def test_mean_average_precision_accepts_class_indices() -> None:
    labels = np.array([0, 1, 2, 1])
    scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]])
    one_hot = np.eye(3, dtype=int)[labels]
    assert mean_average_precision(labels, scores.argmax(axis=1), scores) == pytest.approx(
        mean_average_precision(one_hot, None, scores))
