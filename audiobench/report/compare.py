"""``audiobench compare A B``: paired comparison of two records on the same clips.

Two records are comparable only when they evaluate the same task, under the same protocol (split description
and official flag), with the same primary metric, on exactly the same (clip, split) pairs with the same targets
and class order. Anything else is refused with an :class:`~audiobench.errors.AudiobenchError`.

The statistic is the one records report: the per-split metric, averaged over splits. The difference is B − A.
Its 95 % confidence interval is a paired percentile bootstrap: every resample draws, within each split, as many
clips as the split holds, with replacement, and both records are scored on the same draw. The bootstrap is
vectorised (each resample is a vector of per-clip counts; the metric is evaluated with those counts as weights),
and seeded, so the same inputs and seed give the same interval.

The paired test depends on the metric (:data:`PAIRED_TESTS`): for ``accuracy`` the exact McNemar test, a
two-sided binomial test of the discordant clips pooled over all splits (``b`` clips only A gets right, ``c`` only
B gets right, ``p = binomtest(b, b + c, 0.5)``; ``p = 1`` when no clip is discordant). Metrics without an exact
paired test (``mAP``) get a paired bootstrap p-value from the same resamples: the bootstrap distribution of the
difference shifted to mean-zero under the null, two-sided, ``p = (1 + #{|d* − d| ≥ |d|}) / (1 + R)``.

JSON keys of :func:`compare` (and ``audiobench compare --json``):

==============  ==================================================================================================
key             meaning
==============  ==================================================================================================
``a``, ``b``    ``record`` (path), ``model``, ``recorded`` (the record's mean), ``recomputed`` (from predictions)
``task``        task name
``metric``      primary metric compared
``official``    whether the (shared) protocol is official
``protocol``    the protocol's split description
``difference``  B − A of the statistic (mean over splits of the per-split metric)
``ci95``        ``[low, high]``: 2.5 and 97.5 percentiles of the bootstrap differences
``resamples``   number of bootstrap resamples
``seed``        seed of the resampling
``test``        ``mcnemar-exact`` or ``paired-bootstrap``
``test_name``   the test in words
``p_value``     two-sided p-value of the test
``discordant``  ``{"a_only_correct": b, "b_only_correct": c}`` for McNemar, else ``null``
``clips``       number of clips compared
``splits``      ``{split: clips}`` in split order
``per_split``   ``{split: {"a", "b", "difference"}}``: the metric of each record per split
==============  ==================================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from scipy.stats import binomtest

from audiobench.errors import AudiobenchError
from audiobench.predictions import Predictions, score_splits
from audiobench.registry import METRICS
from audiobench.report.records import RecordFile, load_record
from audiobench.results import summarise

# metric(target, predicted, scores, weights [R, n]) -> [R] values, one per resample
WeightedMetric = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


# --- comparability ---------------------------------------------------------------------------------------------

def check_comparable(a: RecordFile, b: RecordFile) -> None:
    """Refuse two records that do not measure the same thing (task, protocol, official flag, metric)."""
    checks = (
        ("task", a.task, b.task),
        ("protocol (split description)", a.record["protocol"].get("splits"), b.record["protocol"].get("splits")),
        ("official flag", a.official, b.official),
        ("primary metric", a.primary_metric, b.primary_metric),
    )
    for what, left, right in checks:
        if left != right:
            raise AudiobenchError(f"Records {a.path.name} and {b.path.name} differ in {what}: {left!r} vs {right!r}.",
                                  hint="Compare two records of the same task, run with the same protocol "
                                       "(same --cv / seed or both official).")


def _keys(predictions: Predictions) -> np.ndarray:
    return np.char.add(np.char.add(predictions.split, "\x00"), predictions.clip_id)


def align(a: Predictions, b: Predictions, names: tuple[str, str] = ("A", "B")) -> Predictions:
    """``b``'s rows reordered to ``a``'s (clip, split) order; refuse different clip sets, targets or classes."""
    hint = "Both records must come from runs on the same clips and splits (same data, protocol and seed)."
    if a.classes.tolist() != b.classes.tolist():
        raise AudiobenchError(f"The predictions of {names[0]} and {names[1]} have different classes.", hint=hint)
    keys_a, keys_b = _keys(a), _keys(b)
    for name, keys in zip(names, (keys_a, keys_b)):
        if len(np.unique(keys)) != len(keys):
            raise AudiobenchError(f"The predictions of {name} list a (clip, split) pair more than once.",
                                  hint="Re-run the record's command to regenerate its predictions file.")
    order_a, order_b = np.argsort(keys_a, kind="stable"), np.argsort(keys_b, kind="stable")
    if len(keys_a) != len(keys_b) or not np.array_equal(keys_a[order_a], keys_b[order_b]):
        only_a = len(np.setdiff1d(keys_a, keys_b))
        only_b = len(np.setdiff1d(keys_b, keys_a))
        raise AudiobenchError(f"{names[0]} and {names[1]} were scored on different clips: {only_a} (clip, split) "
                              f"pairs only in {names[0]}, {only_b} only in {names[1]}.", hint=hint)
    rows = np.empty(len(keys_a), dtype=int)
    rows[order_a] = order_b
    aligned = b.subset(rows)
    if not np.array_equal(a.target, aligned.target):
        raise AudiobenchError(f"{names[0]} and {names[1]} give different targets for the same clips.", hint=hint)
    if (a.mask is None) != (aligned.mask is None) or (
            a.mask is not None and not np.array_equal(a.mask, aligned.mask)):
        raise AudiobenchError(f"{names[0]} and {names[1]} have different label masks for the same clips.", hint=hint)
    return aligned


# --- weighted (bootstrap) metrics ------------------------------------------------------------------------------

def weighted_accuracy(target: np.ndarray, predicted: np.ndarray, scores: np.ndarray,
                      weights: np.ndarray) -> np.ndarray:
    """Accuracy of each resample; ``weights`` ``[R, n]`` are the clip counts of the resamples."""
    correct = (predicted == target).astype(np.float64)
    return weights @ correct / weights.sum(axis=1)


def _multi_hot(target: np.ndarray, classes: int) -> np.ndarray:
    return target if target.ndim == 2 else np.eye(classes, dtype=np.int8)[target]


def weighted_map(target: np.ndarray, predicted: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """mAP of each resample: mean over the classes with a positive in the resample.

    Equal to :func:`audiobench.metrics.mean_average_precision` on the resampled clips (scikit-learn's average
    precision, tied scores forming one threshold), written per positive (clip ``i``, class ``c``):
    ``AP_c = sum_i w_i * precision_i / sum_i w_i``, where ``precision_i`` is the weighted share of positives
    among the clips scoring at least ``scores[i, c]`` in class ``c``. Those counts are matrix products of the
    weights, so every resample is scored at once.
    """
    labels = _multi_hot(target, scores.shape[1]).astype(bool)
    clip, cls = np.nonzero(labels)  # one column per positive (clip, class) pair
    numerator = np.zeros((weights.shape[0], scores.shape[1]))
    positives = np.zeros_like(numerator)
    for chunk in np.array_split(np.arange(len(clip)), max(1, len(clip) * len(scores) // 4_000_000)):
        at_least = scores[:, cls[chunk]] >= scores[clip[chunk], cls[chunk]]  # [n, P]: clip j ranks above pair p
        seen = weights @ at_least
        true_seen = weights @ (at_least & labels[:, cls[chunk]])
        w = weights[:, clip[chunk]]
        with np.errstate(invalid="ignore", divide="ignore"):
            contribution = np.where(w > 0, w * true_seen / np.where(seen > 0, seen, 1), 0.0)
        member = np.eye(scores.shape[1])[cls[chunk]]  # [P, C]: the class of each pair
        numerator += contribution @ member
        positives += w @ member
    present = positives > 0
    average_precision = np.where(present, numerator / np.where(present, positives, 1), 0.0)
    return average_precision.sum(axis=1) / present.sum(axis=1)


WEIGHTED_METRICS: dict[str, WeightedMetric] = {"accuracy": weighted_accuracy, "mAP": weighted_map}


def _generic_weighted(name: str) -> WeightedMetric:
    """Any registered metric, evaluated resample by resample (slow; for metrics without a vectorised form)."""
    metric = METRICS.get(name)

    def weighted(target: np.ndarray, predicted: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
        values = []
        for counts in weights.astype(int):
            rows = np.repeat(np.arange(len(counts)), counts)
            values.append(metric(target[rows], predicted[rows], scores[rows]))
        return np.asarray(values, dtype=np.float64)

    return weighted


def weighted_metric(name: str) -> WeightedMetric:
    """The resample-weighted form of metric ``name``."""
    return WEIGHTED_METRICS.get(name) or _generic_weighted(name)


# --- bootstrap and tests ---------------------------------------------------------------------------------------

def bootstrap_differences(a: Predictions, b: Predictions, metric: str, resamples: int = 10_000,
                          seed: int = 0) -> np.ndarray:
    """``[resamples]`` differences B − A of the mean-over-splits metric, clips resampled within each split.

    ``a`` and ``b`` must be aligned row for row (see :func:`align`).
    """
    weighted = weighted_metric(metric)
    rng = np.random.default_rng(seed)
    pred_a, pred_b = a.predicted(), b.predicted()
    total = np.zeros(resamples)
    splits = a.split_names()
    for name in splits:
        rows = np.flatnonzero(a.split == name)
        weights = rng.multinomial(len(rows), np.full(len(rows), 1.0 / len(rows)), size=resamples).astype(np.float64)
        target = a.target[rows]
        total += (weighted(target, pred_b[rows], b.scores[rows], weights)
                  - weighted(target, pred_a[rows], a.scores[rows], weights))
    return total / len(splits)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> list[float]:
    """``[low, high]`` percentile interval of ``samples``."""
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return [float(low), float(high)]


@dataclass
class PairedTest:
    """Result of a paired test of A against B."""

    test: str
    name: str
    p_value: float
    discordant: dict[str, int] | None = None


def mcnemar_exact(a: Predictions, b: Predictions) -> PairedTest:
    """Exact McNemar test: two-sided binomial test on the clips exactly one of A and B gets right."""
    correct_a, correct_b = a.predicted() == a.target, b.predicted() == b.target
    a_only, b_only = int(np.sum(correct_a & ~correct_b)), int(np.sum(correct_b & ~correct_a))
    p = 1.0 if a_only + b_only == 0 else float(binomtest(a_only, a_only + b_only, 0.5).pvalue)
    return PairedTest("mcnemar-exact", "exact McNemar (two-sided binomial test on discordant clips)", p,
                      {"a_only_correct": a_only, "b_only_correct": b_only})


def bootstrap_p_value(differences: np.ndarray, observed: float) -> float:
    """Two-sided paired-bootstrap p-value: the bootstrap differences shifted to mean zero under the null."""
    extreme = np.sum(np.abs(differences - observed) >= abs(observed) - 1e-12)
    return float((1 + extreme) / (1 + len(differences)))


PAIRED_TESTS: dict[str, Callable[[Predictions, Predictions], PairedTest]] = {"accuracy": mcnemar_exact}


def paired_test(metric: str, a: Predictions, b: Predictions, differences: np.ndarray,
                observed: float) -> PairedTest:
    """The exact paired test of ``metric`` if it has one, else the paired bootstrap p-value."""
    exact = PAIRED_TESTS.get(metric)
    if exact is not None:
        return exact(a, b)
    return PairedTest("paired-bootstrap", "paired bootstrap (two-sided, null-shifted, clips resampled within "
                      "splits)", bootstrap_p_value(differences, observed))


# --- the report ------------------------------------------------------------------------------------------------

def _recomputed(record_file: RecordFile, predictions: Predictions) -> dict[str, Any]:
    """The primary metric summarised from the predictions; refuse if it is not the recorded mean."""
    metric = record_file.primary_metric
    recomputed = summarise(score_splits(predictions, METRICS.get(metric)))
    recorded = record_file.score()["mean"]
    if recomputed["mean"] != recorded:
        raise AudiobenchError(f"Record {record_file.path} says {metric} = {recorded!r}, but its predictions file "
                              f"gives {recomputed['mean']!r}.",
                              hint=f"Run `audiobench rescore {record_file.path}` to see which split differs.")
    return recomputed


def compare_predictions(a: Predictions, b: Predictions, metric: str, resamples: int = 10_000,
                        seed: int = 0) -> dict[str, Any]:
    """The paired comparison of two aligned predictions (difference, ``ci95``, test, per-split values)."""
    if resamples < 1:
        raise AudiobenchError(f"--resamples must be at least 1, got {resamples}.", hint="Use e.g. 10000.")
    function = METRICS.get(metric)
    per_a, per_b = score_splits(a, function), score_splits(b, function)
    mean_a, mean_b = summarise(per_a)["mean"], summarise(per_b)["mean"]
    if mean_a is None or mean_b is None:
        raise AudiobenchError(f"{metric} is undefined on these clips (e.g. a split without positives), so the "
                              "records cannot be compared on it.", hint="Compare on another metric.")
    observed = mean_b - mean_a
    differences = bootstrap_differences(a, b, metric, resamples, seed)
    test = paired_test(metric, a, b, differences, observed)
    return {
        "metric": metric,
        "difference": float(observed),
        "ci95": percentile_interval(differences),
        "resamples": int(resamples),
        "seed": int(seed),
        "test": test.test,
        "test_name": test.name,
        "p_value": test.p_value,
        "discordant": test.discordant,
        "clips": int(len(a.clip_id)),
        "splits": {name: int(np.sum(a.split == name)) for name in a.split_names()},
        "per_split": {name: {"a": per_a[name], "b": per_b[name], "difference": per_b[name] - per_a[name]}
                      for name in per_a},
    }


def compare(path_a: Path, path_b: Path, resamples: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Compare record B against record A on the same clips (see the module docstring for the keys)."""
    record_a, record_b = load_record(path_a), load_record(path_b)
    check_comparable(record_a, record_b)
    predictions_a, original_b = record_a.predictions(), record_b.predictions()
    predictions_b = align(predictions_a, original_b, (record_a.path.name, record_b.path.name))
    sides = {}
    for key, record_file, predictions in (("a", record_a, predictions_a), ("b", record_b, original_b)):
        sides[key] = {"record": str(record_file.path), "model": record_file.model,
                      "recorded": record_file.score()["mean"],
                      "recomputed": _recomputed(record_file, predictions)["mean"]}
    result = compare_predictions(predictions_a, predictions_b, record_a.primary_metric, resamples, seed)
    return {**sides, "task": record_a.task, "official": record_a.official,
            "protocol": record_a.record["protocol"].get("splits"), **result}
