"""``audiobench check``: green on what the project commits, red on a tampered published number, a
tampered record and a changed model."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from shared_material import SHARED
from audiobench import provenance
from audiobench.cli import app
from audiobench.predictions import predictions_path
from audiobench.resources import data_dir, published_numbers_file

runner = CliRunner()
RUN = ["run", "--task", "synthetic", "--model", "logmel-stats", "--cv", "3", "--workers", "0"]


def check(*arguments: str):
    return runner.invoke(app, ["check", "--json", *arguments])


@pytest.fixture(scope="module")
def synthetic_results(tmp_path_factory) -> Path:
    """A results directory holding one real record of the synthetic task, written by the CLI."""
    output = tmp_path_factory.mktemp("results")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        patch.setattr(provenance, "git_revision", lambda directory=None: None)
        patch.setattr(sys, "argv", ["audiobench", *RUN])  # the command the record's provenance keeps
        result = runner.invoke(app, [*RUN, "-o", str(output)])
    assert result.exit_code == 0, result.output
    return output


def _rows(result) -> list[dict]:
    return json.loads(result.stdout)["rows"]


def test_catalog_complexity_holds() -> None:
    result = check("--section", "complexity", "--model", "mn04", "--model", "dymn04", "--model", "logmel-stats")
    assert result.exit_code == 0, result.output
    rows = _rows(result)
    assert {(r["subject"], r["quantity"], r["status"]) for r in rows} >= {
        ("mn04", "params (M)", "pass"), ("mn04", "MACs (G)", "pass"), ("dymn04", "params (M)", "pass")}
    assert any(r["subject"] == "logmel-stats" and r["status"] == "skip" for r in rows)


def test_tampered_published_number_fails(tmp_path: Path) -> None:
    data = yaml.safe_load(published_numbers_file().read_text())
    for record in data["records"]:
        if record["id"] == "r0004":  # mn04_as: 0.983 M params
            record["params_M"] = 1.2
    tampered = tmp_path / "published.yaml"
    tampered.write_text(yaml.safe_dump(data))
    result = check("--section", "complexity", "--model", "mn04", "--published", str(tampered))
    assert result.exit_code == 1
    failed = [r for r in _rows(result) if r["status"] == "FAIL"]
    assert [(r["subject"], r["quantity"], r["expected"]) for r in failed] == [("mn04", "params (M)", 1.2)]


def test_committed_records_rescore_exactly() -> None:
    results = data_dir("leaderboards").parent / "results"
    result = check("--section", "records", "--results", str(results))
    assert result.exit_code == 0, result.output
    assert sum(r["quantity"] == "rescore from predictions" and r["status"] == "pass" for r in _rows(result)) >= 2
    assert sum(r["quantity"] == "code version" and r["status"] == "pass" for r in _rows(result)) >= 2


def test_record_made_by_other_code_fails(synthetic_results: Path, tmp_path: Path) -> None:
    (original,) = synthetic_results.glob("*.json")
    record = json.loads(original.read_text())
    passing = _rows(check("--section", "records", "--results", str(synthetic_results)))
    assert [r["status"] for r in passing if r["quantity"] == "code version"] == ["pass"]
    for field, changed in ((("model", "fingerprint"), "model"), (("protocol",), "protocol"),
                           (("input_pipeline",), "input pipeline")):
        results = tmp_path / changed.replace(" ", "_")
        results.mkdir()
        doctored = json.loads(json.dumps(record))
        block = doctored
        for key in field:
            block = block[key]
        block["implementation"] = "0" * 16  # as if the code changed after the run
        (results / original.name).write_text(json.dumps(doctored))
        shutil.copy(predictions_path(original), results)
        result = check("--section", "records", "--results", str(results))
        assert result.exit_code == 1
        (row,) = [r for r in _rows(result) if r["quantity"] == "code version"]
        assert row["status"] == "FAIL" and row["measured"] == f"{changed} changed"
        assert "re-run `audiobench run --task synthetic" in row["note"]
    elsewhere = tmp_path / "other_python"  # made under another Python: its code versions cannot be compared
    elsewhere.mkdir()
    doctored = json.loads(json.dumps(record))
    doctored["model"]["fingerprint"]["implementation"] = "0" * 16
    doctored["provenance"]["python"] = "2.7.18"
    (elsewhere / original.name).write_text(json.dumps(doctored))
    shutil.copy(predictions_path(original), elsewhere)
    (row,) = [r for r in _rows(check("--section", "records", "--results", str(elsewhere)))
              if r["quantity"] == "code version"]
    assert row["status"] == "skip" and "made under Python 2.7.18" in row["note"]
    unversioned = tmp_path / "unversioned"
    unversioned.mkdir()
    record["model"].pop("code_roots")
    record["protocol"].pop("implementation")
    record.pop("input_pipeline")
    (unversioned / original.name).write_text(json.dumps(record))
    shutil.copy(predictions_path(original), unversioned)
    rows = _rows(check("--section", "records", "--results", str(unversioned)))
    assert [r["status"] for r in rows if r["quantity"] == "code version"] == ["skip"]


def test_record_reproduces(synthetic_results: Path) -> None:
    result = check("--section", "records", "--section", "reproduce", "--results", str(synthetic_results),
                   "--spec", str(_spec_without_predictions(synthetic_results.parent)))
    assert result.exit_code == 0, result.output
    assert any(r["section"] == "reproduce" and r["status"] == "pass" for r in _rows(result))


def _spec_without_predictions(directory: Path) -> Path:
    spec = yaml.safe_load((data_dir("leaderboards") / "regression.yaml").read_text())
    spec["reproductions"]["predictions"] = []  # the reference predictions are checked in their own test
    path = directory / "regression.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_tampered_record_fails(synthetic_results: Path, tmp_path: Path) -> None:
    (original,) = synthetic_results.glob("*.json")
    results = tmp_path / "results"
    results.mkdir()
    record = json.loads(original.read_text())
    split = next(iter(record["metrics"]["accuracy"]["per_split"]))
    record["metrics"]["accuracy"]["per_split"][split] -= 0.05
    (results / original.name).write_text(json.dumps(record))
    shutil.copy(predictions_path(original), results)
    result = check("--section", "records", "--section", "reproduce", "--results", str(results),
                   "--spec", str(_spec_without_predictions(tmp_path)))
    assert result.exit_code == 1
    failed = {(r["section"], r["quantity"]) for r in _rows(result) if r["status"] == "FAIL"}
    assert ("records", "rescore from predictions") in failed
    assert ("reproduce", f"accuracy {split} (re-run)") in failed


def test_changed_model_fails(synthetic_results: Path, tmp_path: Path, monkeypatch) -> None:
    import torch

    from audiobench.models.baselines import LogMelStats

    original = LogMelStats.embed

    def changed(self, waveforms):  # e.g. a front-end bug: the std half of the embedding is lost
        embedding = original(self, waveforms)
        return torch.cat([embedding[:, :128], torch.zeros_like(embedding[:, 128:])], dim=1)

    monkeypatch.setattr(LogMelStats, "embed", changed)
    result = check("--section", "reproduce", "--results", str(synthetic_results),
                   "--spec", str(_spec_without_predictions(tmp_path)))
    assert result.exit_code == 1
    assert any(r["status"] == "FAIL" and "re-run" in r["quantity"] for r in _rows(result))


def _reproduce_only(kind: str, keys: tuple[str, ...], tmp_path: Path):
    """``check --section reproduce`` on an empty results folder with only the spec's ``kind`` cases
    (their paths, relative to the checkout, made absolute)."""
    spec = yaml.safe_load((data_dir("leaderboards") / "regression.yaml").read_text())
    root = data_dir("leaderboards").parent
    for other in ("predictions", "sed"):
        if other != kind:
            spec["reproductions"][other] = []
    for case in spec["reproductions"][kind]:
        for key in keys:
            case[key] = str(root / case[key])
    path = tmp_path / "regression.yaml"
    path.write_text(yaml.safe_dump(spec))
    empty = tmp_path / "results"
    empty.mkdir()
    result = check("--section", "reproduce", "--results", str(empty), "--spec", str(path))
    assert result.exit_code == 0, result.output
    return _rows(result)


def test_reference_predictions_on_the_metro_clip(tmp_path: Path) -> None:
    if not (SHARED / "data" / "tau22" / "metro_station-paris.wav").is_file():
        pytest.skip("shared reference material not found")
    rows = _reproduce_only("predictions", ("checkpoint", "audio"), tmp_path)
    assert {r["subject"] for r in rows if r["status"] == "pass"} == {"mn04-metro", "cpmobile-metro"}


def test_desed_scoring_reproduction(tmp_path: Path) -> None:
    if not (SHARED / "data" / "desed" / "validation.tsv").is_file():
        pytest.skip("shared reference material not found")
    rows = _reproduce_only("sed", ("ground_truth", "durations", "detections", "f1_detections"), tmp_path)
    assert {r["quantity"] for r in rows if r["status"] == "pass"} >= {"PSDS1", "PSDS2", "collar_F1_macro"}
