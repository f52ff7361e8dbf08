"""``audiobench compare``: paired bootstrap CI, McNemar / bootstrap p-values, and refusal of incomparable records."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.special import comb
from typer.testing import CliRunner

from audiobench import provenance
from audiobench.cli import app
from audiobench.errors import AudiobenchError
from audiobench.metrics import mean_average_precision
from audiobench.predictions import Predictions, load_predictions, predictions_path, sha256_bytes
from audiobench.report.compare import (align, bootstrap_differences, compare, compare_predictions, mcnemar_exact,
                                       weighted_accuracy, weighted_map)

runner = CliRunner()


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real records of the synthetic task on the same clips: a good probe and an over-regularised one."""
    from audiobench.runner import RunOptions, run

    output = tmp_path_factory.mktemp("results")
    paths = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        patch.setattr(provenance, "git_revision", lambda directory=None: None)
        for name, probe in (("good", {}), ("worse", {"C": 1e-4})):
            _, paths[name] = run(RunOptions(task="synthetic", model="logmel-stats", device="cpu", num_workers=0,
                                            output_dir=output, cv=3, seed=0, probe_options=probe))
    return paths


def _copy_record(source: Path, folder: Path, name: str, edit_record=None,
                 predictions: Predictions | None = None) -> Path:
    """A copy of ``source`` under ``folder`` with the record edited and/or its predictions file replaced."""
    record = json.loads(source.read_text())
    target = folder / f"{name}.json"
    data = (predictions.to_bytes() if predictions is not None else predictions_path(source).read_bytes())
    predictions_path(target).write_bytes(data)
    record["predictions"] = {"file": predictions_path(target).name, "sha256": sha256_bytes(data)}
    if edit_record is not None:
        edit_record(record)
    target.write_text(json.dumps(record))
    return target


def _compare_json(a: Path, b: Path, *options: str) -> dict:
    result = runner.invoke(app, ["compare", str(a), str(b), "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- on real records -------------------------------------------------------------------------------------------

def test_identical_records_differ_by_exactly_zero(records: dict[str, Path]) -> None:
    report = _compare_json(records["good"], records["good"], "--resamples", "2000")
    assert report["difference"] == 0.0 and report["ci95"] == [0.0, 0.0]
    assert report["test"] == "mcnemar-exact" and report["p_value"] == 1.0
    assert report["discordant"] == {"a_only_correct": 0, "b_only_correct": 0}
    assert report["a"]["recorded"] == report["a"]["recomputed"] == report["b"]["recomputed"]
    assert report["clips"] == 120 and report["splits"] == {"cv1": 40, "cv2": 40, "cv3": 40}
    assert report["metric"] == "accuracy" and report["resamples"] == 2000 and report["seed"] == 0


def test_better_model_has_a_positive_difference_and_interval(records: dict[str, Path]) -> None:
    report = _compare_json(records["worse"], records["good"])
    good = json.loads(records["good"].read_text())["metrics"]["accuracy"]["mean"]
    worse = json.loads(records["worse"].read_text())["metrics"]["accuracy"]["mean"]
    assert good > worse
    assert report["difference"] == pytest.approx(good - worse, abs=1e-12)
    low, high = report["ci95"]
    assert 0 < low < report["difference"] < high
    counts = report["discordant"]
    # equal split sizes: the mean over splits is the pooled accuracy, so the discordant clips give the difference
    assert (counts["b_only_correct"] - counts["a_only_correct"]) / 120 == pytest.approx(report["difference"])
    assert report["p_value"] < 0.05 and report["a"]["model"] == report["b"]["model"] == "logmel-stats"

    swapped = _compare_json(records["good"], records["worse"])
    assert swapped["difference"] == pytest.approx(-report["difference"], abs=1e-12)
    assert swapped["ci95"] == pytest.approx([-high, -low], abs=1e-12)
    assert swapped["p_value"] == report["p_value"]


def test_the_bootstrap_is_reproducible_with_its_seed(records: dict[str, Path]) -> None:
    first = _compare_json(records["worse"], records["good"], "--resamples", "500", "--seed", "3")
    again = _compare_json(records["worse"], records["good"], "--resamples", "500", "--seed", "3")
    other = _compare_json(records["worse"], records["good"], "--resamples", "500", "--seed", "4")
    assert first["ci95"] == again["ci95"] and first["ci95"] != other["ci95"]


def test_text_output(records: dict[str, Path]) -> None:
    result = runner.invoke(app, ["compare", str(records["worse"]), str(records["good"]), "--resamples", "200"])
    assert result.exit_code == 0, result.output
    assert "B - A = +" in result.stdout and "95 % CI" in result.stdout and "McNemar" in result.stdout
    assert "NON-OFFICIAL" in result.stdout


def test_rows_in_another_order_give_the_same_comparison(records: dict[str, Path], tmp_path: Path) -> None:
    good = load_predictions(predictions_path(records["good"]))
    shuffled = good.subset(np.random.default_rng(0).permutation(len(good.clip_id)))
    copy = _copy_record(records["good"], tmp_path, "shuffled", predictions=shuffled)
    direct = _compare_json(records["worse"], records["good"], "--resamples", "300")
    reordered = _compare_json(records["worse"], copy, "--resamples", "300")
    assert reordered["difference"] == direct["difference"] and reordered["ci95"] == direct["ci95"]
    assert reordered["discordant"] == direct["discordant"]


# --- refusals --------------------------------------------------------------------------------------------------

def _refused(a: Path, b: Path) -> str:
    result = runner.invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    return result.stderr


def test_refuses_records_of_different_tasks(records: dict[str, Path], tmp_path: Path) -> None:
    other = _copy_record(records["good"], tmp_path, "other-task",
                         edit_record=lambda record: record["task"].update(name="esc50"))
    message = _refused(records["worse"], other)
    assert "differ in task" in message and "'synthetic' vs 'esc50'" in message


def test_refuses_different_protocols_and_metrics(records: dict[str, Path], tmp_path: Path) -> None:
    protocol = _copy_record(records["good"], tmp_path, "protocol",
                            edit_record=lambda record: record["protocol"].update(splits="official folds"))
    assert "protocol" in _refused(records["worse"], protocol)
    official = _copy_record(records["good"], tmp_path, "official",
                            edit_record=lambda record: record["protocol"].update(official=True))
    assert "official flag" in _refused(records["worse"], official)
    metric = _copy_record(records["good"], tmp_path, "metric",
                          edit_record=lambda record: record["task"].update(metric="mAP"))
    assert "primary metric" in _refused(records["worse"], metric)


def test_refuses_different_clip_sets(records: dict[str, Path], tmp_path: Path) -> None:
    good = load_predictions(predictions_path(records["good"]))
    fewer = _copy_record(records["good"], tmp_path, "fewer", predictions=good.subset(np.arange(1, 120)))
    message = _refused(records["worse"], fewer)
    assert "different clips" in message and "1 (clip, split) pairs only in" in message
    moved = good.subset(np.arange(120))
    moved.split[0] = "cv2" if moved.split[0] != "cv2" else "cv1"
    assert "different clips" in _refused(records["worse"], _copy_record(records["good"], tmp_path, "moved",
                                                                        predictions=moved))


def test_refuses_different_targets(records: dict[str, Path], tmp_path: Path) -> None:
    good = load_predictions(predictions_path(records["good"]))
    relabelled = good.subset(np.arange(120))
    relabelled.target[5] = (relabelled.target[5] + 1) % len(good.classes)
    copy = _copy_record(records["good"], tmp_path, "relabelled", predictions=relabelled)
    assert "different targets" in _refused(records["worse"], copy)


def test_refuses_a_record_whose_predictions_do_not_give_its_number(records: dict[str, Path], tmp_path: Path) -> None:
    edited = _copy_record(records["good"], tmp_path, "edited",
                          edit_record=lambda record: record["metrics"]["accuracy"].update(mean=0.99))
    message = _refused(records["worse"], edited)
    assert "0.99" in message and "rescore" in message


# --- pure functions on constructed predictions -----------------------------------------------------------------

def _single_label(correct: list[bool], split: list[str] | None = None) -> Predictions:
    """Predictions of two classes whose top-1 is right exactly where ``correct`` says."""
    n = len(correct)
    target = np.arange(n) % 2
    predicted = np.where(correct, target, 1 - target)
    scores = np.eye(2, dtype=np.float32)[predicted]
    return Predictions([f"c{i}" for i in range(n)], split or ["test"] * n, target, scores, ["x", "y"])


def test_mcnemar_against_a_hand_computed_binomial() -> None:
    # A right on clips 0-4, B right on clips 1-9: A only right on clip 0 (b = 1), B only on clips 5-9 (c = 5)
    a = _single_label([True] * 5 + [False] * 5)
    b = _single_label([False] + [True] * 9)
    test = mcnemar_exact(a, b)
    assert test.discordant == {"a_only_correct": 1, "b_only_correct": 5}
    by_hand = 2 * (comb(6, 0) + comb(6, 1)) / 2 ** 6  # two-sided: P(X <= 1) + P(X >= 5), X ~ Bin(6, 1/2)
    assert test.p_value == pytest.approx(by_hand) and by_hand == pytest.approx(0.21875)
    assert mcnemar_exact(a, a).p_value == 1.0


def test_bootstrap_resamples_within_each_split() -> None:
    # split s1: A always right, B always wrong; s2: both always right. Every resample keeps 4 clips per split,
    # so B - A is exactly (-1 + 0) / 2 in every resample.
    split = ["s1"] * 4 + ["s2"] * 4
    a = _single_label([True] * 8, split)
    b = _single_label([False] * 4 + [True] * 4, split)
    differences = bootstrap_differences(a, b, "accuracy", resamples=500, seed=1)
    assert differences.shape == (500,) and np.all(differences == -0.5)


def test_weighted_metrics_equal_the_metric_on_resampled_clips() -> None:
    rng = np.random.default_rng(0)
    n, classes = 40, 5
    weights = rng.multinomial(n, np.full(n, 1 / n), size=6).astype(float)
    scores = np.round(rng.random((n, classes)), 1).astype(np.float32)  # many ties
    multiclass = rng.integers(0, classes, n)
    multilabel = (rng.random((n, classes)) < 0.3).astype(np.int8)
    for target in (multiclass, multilabel):
        expected = [mean_average_precision(target[rows], None, scores[rows])
                    for rows in (np.repeat(np.arange(n), counts.astype(int)) for counts in weights)]
        np.testing.assert_allclose(weighted_map(target, None, scores, weights), expected, rtol=0, atol=1e-12)
    predicted = scores.argmax(axis=1)
    expected = [np.mean(predicted[rows] == multiclass[rows])
                for rows in (np.repeat(np.arange(n), counts.astype(int)) for counts in weights)]
    np.testing.assert_allclose(weighted_accuracy(multiclass, predicted, scores, weights), expected)


def test_map_uses_the_paired_bootstrap_test() -> None:
    rng = np.random.default_rng(2)
    n, classes = 60, 4
    target = (rng.random((n, classes)) < 0.4).astype(np.int8)
    good = Predictions([f"c{i}" for i in range(n)], ["test"] * n, target,
                       target + rng.normal(0, 0.3, (n, classes)), list("abcd"))
    noisy = Predictions(good.clip_id, good.split, target, target + rng.normal(0, 2.0, (n, classes)), list("abcd"))
    same = compare_predictions(good, good, "mAP", resamples=300)
    assert same["test"] == "paired-bootstrap" and same["discordant"] is None
    assert same["difference"] == 0.0 and same["ci95"] == [0.0, 0.0] and same["p_value"] == 1.0
    worse = compare_predictions(good, noisy, "mAP", resamples=300)
    assert worse["difference"] < 0 and worse["ci95"][1] < 0 and worse["p_value"] < 0.05


def test_align_refuses_different_classes() -> None:
    a = _single_label([True, False])
    b = Predictions(a.clip_id, a.split, a.target, a.scores, ["x", "z"])
    with pytest.raises(AudiobenchError, match="different classes"):
        align(a, b)


def test_the_bootstrap_is_vectorised() -> None:
    rng = np.random.default_rng(0)
    n, classes = 400, 50
    target = rng.integers(0, classes, n)
    split = np.repeat(["cv1", "cv2", "cv3", "cv4", "cv5"], n // 5)
    a = Predictions(np.arange(n).astype(str), split, target, rng.random((n, classes)), np.arange(classes).astype(str))
    b = Predictions(a.clip_id, split, target, rng.random((n, classes)), a.classes)
    start = time.perf_counter()
    compare_predictions(a, b, "accuracy", resamples=10_000)
    assert time.perf_counter() - start < 5.0  # a per-resample loop takes minutes


def test_compare_library_function_keys(records: dict[str, Path]) -> None:
    report = compare(records["good"], records["good"], resamples=10)
    assert {"a", "b", "task", "metric", "official", "protocol", "difference", "ci95", "resamples", "seed", "test",
            "test_name", "p_value", "discordant", "clips", "splits", "per_split"} <= set(report)
    assert set(report["per_split"]["cv1"]) == {"a", "b", "difference"}
