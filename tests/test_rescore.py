"""Per-clip predictions beside every record, and ``audiobench rescore`` giving the record's numbers exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from audiobench import provenance
from audiobench.cli import app
from audiobench.predictions import Predictions, load_predictions, predictions_path, score_splits

runner = CliRunner()


@pytest.fixture(scope="module")
def record_path(tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        patch.setattr(provenance, "git_revision", lambda directory=None: None)
        result = runner.invoke(app, ["run", "--task", "synthetic", "--model", "logmel-stats", "--cv", "3",
                                     "-o", str(output), "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["record_path"])


def test_predictions_file_beside_the_record(record_path: Path) -> None:
    record = json.loads(record_path.read_text())
    path = predictions_path(record_path)
    assert record["predictions"]["file"] == path.name
    predictions = load_predictions(path, record["predictions"]["sha256"])
    assert predictions.scores.shape == (120, 6) and predictions.target.shape == (120,)
    assert predictions.split_names() == ["cv1", "cv2", "cv3"] and len(set(predictions.clip_id)) == 120
    np.testing.assert_allclose(predictions.scores.sum(axis=1), 1.0, atol=1e-5)  # probe probabilities


def test_rescore_gives_the_numbers_exactly(record_path: Path) -> None:
    result = runner.invoke(app, ["rescore", str(record_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["identical"] and {row["split"] for row in report["rows"]} >= {"mean", "std", "cv1", "cv2", "cv3"}


def test_rescore_fails_on_a_changed_number(record_path: Path, tmp_path: Path) -> None:
    record = json.loads(record_path.read_text())
    record["metrics"]["accuracy"]["per_split"]["cv2"] += 0.01
    copy = tmp_path / record_path.name
    copy.write_text(json.dumps(record))
    predictions_path(copy).write_bytes(predictions_path(record_path).read_bytes())
    result = runner.invoke(app, ["rescore", str(copy)])
    assert result.exit_code == 1 and "NO" in result.stdout


def test_rescore_refuses_a_replaced_predictions_file(record_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / record_path.name
    copy.write_text(record_path.read_text())
    original = load_predictions(predictions_path(record_path))
    flipped = Predictions(original.clip_id, original.split, original.target, original.scores[::-1].copy(),
                          original.classes)
    predictions_path(copy).write_bytes(flipped.to_bytes())
    result = runner.invoke(app, ["rescore", str(copy)])
    assert result.exit_code == 2 and "sha256" in result.stderr and "Traceback" not in result.output


def test_score_splits_per_split_in_order() -> None:
    from audiobench.metrics import accuracy

    predictions = Predictions(clip_id=["a", "b", "c", "d"], split=["s2", "s2", "s1", "s1"], target=[0, 1, 1, 1],
                              scores=[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]], classes=["x", "y"])
    assert score_splits(predictions, accuracy) == {"s2": 1.0, "s1": 0.5}
    again = load_predictions_from_bytes(predictions.to_bytes())
    assert again.clip_id.tolist() == ["a", "b", "c", "d"] and again.scores.dtype == np.float32


def load_predictions_from_bytes(data: bytes) -> Predictions:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.predictions.npz"
        path.write_bytes(data)
        return load_predictions(path)


def test_an_empty_reserved_record_name_is_skipped_with_a_warning(tmp_path) -> None:
    import pytest

    from audiobench.report.records import load_records

    (tmp_path / "esc50__mn04__official__20260101T000000.json").write_bytes(b"")
    with pytest.warns(UserWarning, match="empty"):
        assert load_records(tmp_path) == []
