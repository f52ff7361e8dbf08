"""The command-line interface end to end (typer's CliRunner on ``audiobench.cli.app``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from shared_material import ESC50, MN04, METRO_WAV, file_sha256, require
from audiobench import provenance
from audiobench.cli import app

runner = CliRunner()


def _no_git(directory=None):  # the tests run no git command; provenance.git_revision is stubbed
    return None


@pytest.fixture(autouse=True)
def _stub_git(monkeypatch) -> None:
    monkeypatch.setattr(provenance, "git_revision", _no_git)


def _flat(text: str) -> str:
    """Rich wraps long lines at the console width; join them for substring checks."""
    return re.sub(r"\s+", " ", text)


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------- list


def test_list_models_json() -> None:
    result = invoke("list", "models", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    mn04 = rows["mn04"]
    assert mn04["checkpoint"]["url"] == (
        "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/mn04_as_mAP_432.pt")
    assert mn04["checkpoint"]["sha256"] == file_sha256(MN04)  # verified on the real release file
    assert mn04["sample_rate"] == 32000 and mn04["embedding_dim"] == 384 and mn04["num_classes"] == 527
    assert rows["logmel-stats"]["checkpoint"] is None
    assert all(row["source"] for row in rows.values())


def test_list_tasks_json_and_tables() -> None:
    result = invoke("list", "tasks", "--json")
    assert result.exit_code == 0, result.output
    tasks = {row["name"]: row for row in json.loads(result.stdout)}
    assert tasks["esc50"]["splits"] == {"type": "folds", "folds": [1, 2, 3, 4, 5]}
    assert tasks["synthetic"]["metric"] == "accuracy"
    for kind, name in (("models", "mn04"), ("tasks", "esc50")):
        table = invoke("list", kind)
        assert table.exit_code == 0, table.output
        assert name in table.stdout


def test_version() -> None:
    import audiobench

    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"audiobench {audiobench.__version__}\n"


def test_cpmobile_without_checkpoint_says_how_to_pass_it(isolated_cache) -> None:
    result = invoke("predict", require(METRO_WAV), "--model", "cpmobile", "--device", "cpu")
    assert result.exit_code == 2 and "Traceback" not in result.output
    text = _flat(result.stderr)
    assert "No public download URL exists for checkpoint cpmobile_tau22_c0a7nzin.ckpt" in text
    assert "--checkpoint PATH" in text and "(cannot" not in text


def test_list_unknown_kind_is_a_usage_error() -> None:
    result = invoke("list", "datasets")
    assert result.exit_code == 2 and "Traceback" not in result.output


# --------------------------------------------------------------------------- run


@pytest.fixture(scope="module")
def synthetic_cache(tmp_path_factory) -> Path:
    """One cache shared by the synthetic runs of this module (dataset generated once)."""
    return tmp_path_factory.mktemp("cli-cache")


@pytest.fixture(scope="module")
def first_run(synthetic_cache, tmp_path_factory):
    output = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOBENCH_CACHE", str(synthetic_cache))
        patch.setattr(provenance, "git_revision", _no_git)
        result = invoke("run", "--task", "synthetic", "--model", "logmel-stats", "-o", output, "--json",
                        "--device", "cpu")
    return result, output


@pytest.fixture
def use_synthetic_cache(first_run, synthetic_cache, monkeypatch) -> Path:
    monkeypatch.setenv("AUDIOBENCH_CACHE", str(synthetic_cache))
    return synthetic_cache


def test_run_synthetic(first_run, synthetic_cache) -> None:
    result, output = first_run
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    predictions_file = Path(record["record_path"]).with_name(record["predictions"]["file"])
    assert predictions_file.is_file() and len(record["predictions"]["sha256"]) == 64  # per-clip scores beside it
    assert record["protocol"]["official"] is True
    assert record["task"]["name"] == "synthetic" and record["model"]["name"] == "logmel-stats"
    assert record["metrics"]["accuracy"]["mean"] > 0.8
    assert set(record["metrics"]["accuracy"]["per_split"]) == {"fold1", "fold2", "fold3", "fold4"}
    assert record["embeddings"]["computed"] == 120 and record["embeddings"]["reused"] == 0
    assert "embeddings: 120 computed" in result.stderr

    files = sorted(output.glob("*.json"))
    assert len(files) == 1 and files[0] == Path(record["record_path"])
    assert files[0].name.startswith("synthetic__logmel-stats__official__")
    assert list(output.glob("*.part")) == []
    saved = json.loads(files[0].read_text())
    assert saved["schema_version"] == 2
    prov = saved["provenance"]
    for key in ("audiobench_version", "python", "platform", "device", "seed", "date"):
        assert prov[key] not in (None, ""), key
    assert prov["packages"]["torch"] and prov["seed"] == 0 and prov["device"].startswith("cpu")
    assert prov["audiobench_version"] == __import__("audiobench").__version__
    assert saved["dataset"]["clips"] == 120 and saved["dataset"]["expected_clips"] == 120
    assert re.fullmatch(r"[0-9a-f]{64}", saved["dataset"]["clip_list_sha256"])
    from audiobench.predictions import load_predictions

    predictions = load_predictions(files[0].with_name(saved["predictions"]["file"]), saved["predictions"]["sha256"])
    assert predictions.scores.shape == (120, 6) and predictions.scores.dtype == np.float32
    assert set(predictions.split) == {"fold1", "fold2", "fold3", "fold4"} and len(set(predictions.clip_id)) == 120
    assert list(predictions.classes) == ["tone", "chirp", "noise_bursts", "clicks", "am_tone", "harmonic"]
    # the embeddings went to the (temporary) cache, not anywhere else
    assert (synthetic_cache / "embeddings" / saved["embeddings"]["cache_key"] / "model.json").is_file()


def test_second_run_reuses_every_embedding(first_run, use_synthetic_cache, tmp_path) -> None:
    first = json.loads(first_run[0].stdout)
    result = invoke("run", "--task", "synthetic", "--model", "logmel-stats", "-o", tmp_path, "--json",
                    "--workers", "0")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["embeddings"]["computed"] == 0 and record["embeddings"]["reused"] == 120
    assert record["embeddings"]["cache_key"] == first["embeddings"]["cache_key"]
    assert record["metrics"] == first["metrics"]
    assert record["dataset"]["clip_list_sha256"] == first["dataset"]["clip_list_sha256"]
    assert "no embedding computed" in result.stderr


def test_cv_run_is_non_official(use_synthetic_cache, tmp_path) -> None:
    result = invoke("run", "--cv", "2", "--task", "synthetic", "--model", "logmel-stats", "-o", tmp_path,
                    "--json", "--workers", "0", "--probe-c", "auto")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["protocol"]["official"] is False
    assert "NON-OFFICIAL" in record["protocol"]["splits"]
    assert list(record["metrics"]["accuracy"]["per_split"]) == ["cv1", "cv2"]
    assert record["protocol"]["C"] == "auto" and len(record["protocol"]["chosen_C"]) == 2
    assert Path(record["record_path"]).name.startswith("synthetic__logmel-stats__nonofficial__")


def test_card_with_map_metric_runs(use_synthetic_cache, tmp_path, monkeypatch) -> None:
    from audiobench.resources import data_dir

    cards = tmp_path / "cards"
    cards.mkdir()
    text = (data_dir("tasks") / "synthetic.yaml").read_text()
    (cards / "synthetic-map.yaml").write_text(
        text.replace("name: synthetic\n", "name: synthetic-map\n").replace("metric: accuracy", "metric: mAP"))
    monkeypatch.setenv("AUDIOBENCH_TASKS_PATH", str(cards))
    result = invoke("run", "--task", "synthetic-map", "--model", "logmel-stats", "-o", tmp_path / "out", "--json",
                    "--workers", "0")
    assert result.exit_code == 0, result.output
    assert 0 < json.loads(result.stdout)["metrics"]["mAP"]["mean"] <= 1


def test_table_output_marks_non_official(use_synthetic_cache, tmp_path) -> None:
    result = invoke("run", "--cv", "2", "--task", "synthetic", "--model", "logmel-stats", "-o", tmp_path,
                    "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "NON-OFFICIAL" in result.stdout and "mean ± std" in result.stdout


def test_partial_esc50_is_refused_without_traceback(tmp_path) -> None:
    require(ESC50)
    result = invoke("run", "--task", "esc50", "--model", "mn04", "--data-dir", ESC50, "--checkpoint", require(MN04),
                    "-o", tmp_path)
    assert result.exit_code == 2
    message = _flat(result.stderr)
    assert "414 of 2000" in message and "complete folds: 4" in message and "--cv" in message
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # no record for a run that did not happen


def test_partial_esc50_json_error(tmp_path) -> None:
    require(ESC50)
    result = invoke("run", "--task", "esc50", "--model", "mn04", "--data-dir", ESC50, "--checkpoint", require(MN04),
                    "-o", tmp_path, "--json")
    assert result.exit_code == 2
    error = json.loads(result.stdout)
    assert "414 of 2000 clips present" in error["error"] and "--cv" in error["hint"]


def test_unknown_model_is_a_one_line_error(tmp_path) -> None:
    result = invoke("run", "--task", "synthetic", "--model", "no-such-model", "-o", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "Error: Unknown model 'no-such-model'."
    assert "mn04" in _flat(result.stderr)
    assert "Traceback" not in result.output and result.stdout == ""
    as_json = invoke("run", "--task", "synthetic", "--model", "no-such-model", "-o", tmp_path, "--json")
    assert as_json.exit_code == 2
    assert json.loads(as_json.stdout)["error"] == "Unknown model 'no-such-model'."


def test_unknown_task(tmp_path) -> None:
    result = invoke("run", "--task", "no-such-task", "--model", "logmel-stats", "-o", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "Error: Unknown task 'no-such-task'."


def test_bad_probe_c_and_device(use_synthetic_cache, tmp_path) -> None:
    result = invoke("run", "--task", "synthetic", "--model", "logmel-stats", "-o", tmp_path, "--probe-c", "lots")
    assert result.exit_code == 2 and "--probe-c must be a number" in _flat(result.stderr)
    import torch

    if not torch.cuda.is_available():
        result = invoke("run", "--task", "synthetic", "--model", "logmel-stats", "-o", tmp_path, "--device", "cuda")
        assert result.exit_code == 2 and "no CUDA GPU" in _flat(result.stderr)
    result = invoke("run", "--task", "synthetic", "--model", "logmel-stats", "-o", tmp_path, "--epochs", "5",
                    "--recipe-option", "lr=1e-4")  # forgot --protocol finetune: not silently a linear probe
    assert result.exit_code == 2
    assert "--recipe-option, --epochs apply to --protocol finetune; this run's protocol is 'linear-probe'" in _flat(
        result.stderr)
    assert list(tmp_path.glob("*.json")) == []


# --------------------------------------------------------------------------- predict


def test_predict_metro_station() -> None:
    result = invoke("predict", require(METRO_WAV), "--model", "mn04", "--checkpoint", require(MN04), "--json",
                    "--device", "cpu")
    assert result.exit_code == 0, result.output
    prediction = json.loads(result.stdout)
    assert prediction["warning"] is None and prediction["activation"] == "sigmoid"
    assert prediction["checkpoint_sha256"] == file_sha256(MN04)
    top = prediction["top"]
    assert len(top) == 5
    assert top[0]["label"] == "Train" and top[0]["score"] == pytest.approx(0.727, abs=0.01)
    assert top[1]["label"] == "Rail transport" and top[1]["score"] == pytest.approx(0.578, abs=0.01)
    assert [t["label"] for t in top[2:4]] == ["Railroad car, train wagon", "Subway, metro, underground"]


def test_predict_missing_file(tmp_path) -> None:
    missing = invoke("predict", tmp_path / "nothing.wav", "--model", "mn04", "--checkpoint", require(MN04))
    assert missing.exit_code == 2 and "nothing.wav" in _flat(missing.stderr)
    assert "Traceback" not in missing.output


def test_predict_without_head_is_explained() -> None:
    result = invoke("predict", require(METRO_WAV), "--model", "logmel-stats", "--json")
    assert result.exit_code == 2
    assert "no pretrained classification head" in json.loads(result.stdout)["error"]


# --------------------------------------------------------------------------- records


def test_records_written_in_the_same_second_are_both_kept(tmp_path) -> None:
    from audiobench.results import write_record

    def record(seed: int) -> dict:
        return {"task": {"name": "synthetic"}, "model": {"name": "logmel-stats"},
                "protocol": {"official": False, "seed": seed},
                "provenance": {"date": "2025-01-01T12:00:00+00:00", "seed": seed}}

    first = write_record(record(0), tmp_path)
    second = write_record(record(1), tmp_path)
    assert first != second
    assert json.loads(first.read_text())["provenance"]["seed"] == 0
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_dataset_options_reach_the_loader_and_the_record(use_synthetic_cache, tmp_path) -> None:
    result = invoke("run", "--task", "synthetic", "--model", "logmel-stats", "--dataset-option", "seed=1",
                    "-o", tmp_path, "--json", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dataset"]["options"] == {"seed": 1}
    wrong = invoke("run", "--task", "synthetic", "--model", "logmel-stats", "--dataset-option", "nope=1", "-o", tmp_path)
    assert wrong.exit_code == 2 and "does not take the options ['nope']" in _flat(wrong.stderr)
    malformed = invoke("run", "--task", "synthetic", "--model", "logmel-stats", "--dataset-option", "seed", "-o", tmp_path)
    assert malformed.exit_code == 2 and "KEY=VALUE" in _flat(malformed.stderr)
