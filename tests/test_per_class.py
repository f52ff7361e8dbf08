"""``audiobench classes``: per-class table (checked against scikit-learn), confusion matrix, files written."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score
from typer.testing import CliRunner

from audiobench import provenance
from audiobench.cli import app
from audiobench.predictions import Predictions, predictions_path, sha256_bytes
from audiobench.report.per_class import class_report, normalised_confusion, output_paths, per_class_table

runner = CliRunner()


@pytest.fixture(scope="module")
def record_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real record of the synthetic task (6 classes, 3-fold CV) with its predictions file."""
    from audiobench.runner import RunOptions, run

    output = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        patch.setattr(provenance, "git_revision", lambda directory=None: None)
        _, path = run(RunOptions(task="synthetic", model="logmel-stats", device="cpu", num_workers=0,
                                 output_dir=output, cv=3, seed=0))
    return path


def _single_label() -> Predictions:
    # 4 classes; class "d" has no clip and is never predicted (precision / recall undefined -> 0)
    target = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
    predicted = np.array([0, 1, 0, 1, 2, 2, 2, 0, 2, 0])
    scores = np.eye(4, dtype=np.float32)[predicted] * 0.7 + 0.05
    return Predictions([f"c{i}" for i in range(10)], ["s1"] * 5 + ["s2"] * 5, target, scores, list("abcd"))


def test_single_label_table_matches_sklearn() -> None:
    predictions = _single_label()
    table = per_class_table(predictions)
    assert list(table.columns) == ["class", "support", "recall", "precision", "f1"]
    assert table["class"].tolist() == list("abcd") and table["support"].tolist() == [4, 2, 4, 0]
    target, predicted, labels = predictions.target, predictions.predicted(), [0, 1, 2, 3]
    np.testing.assert_allclose(table["recall"], recall_score(target, predicted, labels=labels, average=None,
                                                             zero_division=0))
    np.testing.assert_allclose(table["precision"], precision_score(target, predicted, labels=labels, average=None,
                                                                   zero_division=0))
    np.testing.assert_allclose(table["f1"], f1_score(target, predicted, labels=labels, average=None, zero_division=0))
    assert table["recall"].tolist()[:3] == pytest.approx([3 / 4, 1 / 2, 3 / 4])  # by hand


def test_confusion_is_normalised_per_true_class() -> None:
    matrix = normalised_confusion(_single_label())
    assert matrix.shape == (4, 4)
    np.testing.assert_allclose(matrix.sum(axis=1), [1, 1, 1, 0])  # class d has no clip
    assert matrix[0].tolist() == [0.75, 0.25, 0, 0] and matrix[2].tolist() == [0.25, 0, 0.75, 0]


def test_multi_label_table_matches_sklearn_and_respects_the_mask() -> None:
    rng = np.random.default_rng(0)
    target = (rng.random((30, 3)) < 0.4).astype(np.int8)
    target[:, 2] = 0  # class without positives: AP undefined
    scores = rng.random((30, 3))
    mask = np.ones((30, 3), dtype=bool)
    mask[:10, 0] = False  # first 10 labels of class 0 unknown
    predictions = Predictions([f"c{i}" for i in range(30)], ["test"] * 30, target, scores, ["x", "y", "z"], mask)
    table = per_class_table(predictions)
    assert list(table.columns) == ["class", "support", "ap"]
    assert table["support"].tolist() == [int(target[10:, 0].sum()), int(target[:, 1].sum()), 0]
    assert table["ap"][0] == pytest.approx(average_precision_score(target[10:, 0], scores[10:, 0]))
    assert table["ap"][1] == pytest.approx(average_precision_score(target[:, 1], scores[:, 1]))
    assert math.isnan(table["ap"][2])


def test_classes_writes_csv_png_and_svg_beside_the_record(record_path: Path) -> None:
    report = class_report(record_path)
    paths = output_paths(record_path, None)
    assert report["files"] == {key: str(path) for key, path in paths.items()}
    assert paths["png"].name == record_path.stem + ".confusion.png" and paths["png"].parent == record_path.parent
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths["svg"].read_text()
    assert "<svg" in svg and all(row["class"] in svg for row in report["rows"])  # class names as SVG text
    table = pd.read_csv(paths["csv"])
    classes = json.loads(record_path.read_text())["dataset"]["classes"]
    assert len(table) == classes and table["support"].sum() == report["clips"] == 120
    assert report["multilabel"] is False and report["splits"] == ["cv1", "cv2", "cv3"]


def test_classes_cli_out_dir_and_json(record_path: Path, tmp_path: Path) -> None:
    folder = tmp_path / "figures"
    result = runner.invoke(app, ["classes", str(record_path), "--out", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {"record", "task", "model", "multilabel", "clips", "splits", "columns", "rows", "files"} <= set(report)
    assert sorted(Path(p).name for p in report["files"].values()) == sorted(
        f"{record_path.stem}{suffix}" for suffix in (".classes.csv", ".confusion.png", ".confusion.svg"))
    assert all(Path(p).parent == folder and Path(p).stat().st_size > 0 for p in report["files"].values())
    row = report["rows"][0]
    assert set(row) == {"class", "support", "recall", "precision", "f1"} and row["class"] in result.stdout

    text = runner.invoke(app, ["classes", str(record_path), "--out", str(folder)])
    assert text.exit_code == 0 and "precision" in text.stdout and "wrote" in text.stdout


def test_multi_label_record_gets_a_csv_but_no_confusion_matrix(record_path: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    multi = Predictions([f"c{i}" for i in range(20)], ["test"] * 20, (rng.random((20, 3)) < 0.5).astype(np.int8),
                        rng.random((20, 3)), ["x", "y", "z"])
    copy = tmp_path / "multi.json"
    data = multi.to_bytes()
    predictions_path(copy).write_bytes(data)
    record = json.loads(record_path.read_text())
    record["predictions"] = {"file": predictions_path(copy).name, "sha256": sha256_bytes(data)}
    copy.write_text(json.dumps(record))
    report = class_report(copy)
    assert report["multilabel"] is True and set(report["files"]) == {"csv"}
    assert report["columns"] == ["class", "support", "ap"]
    assert not output_paths(copy, None)["png"].exists()


def test_a_record_without_predictions_is_refused(record_path: Path, tmp_path: Path) -> None:
    record = json.loads(record_path.read_text())
    record["schema_version"] = 1
    del record["predictions"]
    old = tmp_path / "old.json"
    old.write_text(json.dumps(record))
    result = runner.invoke(app, ["classes", str(old)])
    assert result.exit_code == 2 and "no predictions file" in result.stderr and "Traceback" not in result.output
