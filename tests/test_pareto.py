"""``audiobench pareto``: the front, the points (filled / hollow / left out) and the files it writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from audiobench.cli import app
from audiobench.errors import AudiobenchError
from audiobench.report.pareto import pareto_front, write_pareto
from audiobench.report.points import NOT_MEASURABLE, PUBLISHED, REPRODUCED, gather_points

runner = CliRunner()


def fake_measure(model: str) -> dict:
    """Stands in for the meta-device count (tests stay fast): MACs and params grow with the name's number."""
    size = {"mn01": 1, "mn10": 10, "mn40": 40}[model]
    return {"params": {"total": size * 1e6}, "macs": {"total": size * 1e8}, "input": {"seconds": 10.0}}


def write_record(directory: Path, name: str, model: str, score: float, macs: float, official: bool = True) -> Path:
    record = {
        "schema_version": 2,
        "task": {"name": "esc50", "card": "esc50.yaml", "metric": "accuracy", "label_type": "multiclass"},
        "protocol": {"official": official, "name": "linear-probe",
                     "splits": "official folds" if official else "NON-OFFICIAL: stratified 5-fold"},
        "model": {"name": model, "family": "efficientat-mn"},
        "complexity": {"model": model, "family": "efficientat-mn", "input": {"seconds": 10.0},
                       "params": {"total": macs / 100}, "macs": {"total": macs, "G": macs / 1e9},
                       "latency": None},
        "metrics": {"accuracy": {"mean": score, "std": 0.01, "std_ddof": 0, "per_split": {}}},
    }
    path = directory / name
    path.write_text(json.dumps(record))
    return path


@pytest.fixture
def material(tmp_path: Path) -> tuple[Path, Path]:
    results = tmp_path / "results"
    results.mkdir()
    write_record(results, "esc50__mn04__official__20260101T000000.json", "mn04", 0.90, 1.1e8)
    write_record(results, "esc50__mn10__nonofficial__20260101T000000.json", "mn10", 0.99, 1e6, official=False)
    published = tmp_path / "published.yaml"
    rows = [
        {"id": "p1", "model": "mn40_as", "family": "mn", "task": "esc50", "metric": "accuracy", "value": 95.0,
         "unit": "percent", "source": "paper A", "confidence": "exact_table", "protocol": "fine-tuned, 5 folds"},
        {"id": "p2", "model": "BEATs", "family": "beats", "task": "esc50", "metric": "accuracy", "value": 98.1,
         "unit": "percent", "source": "paper B", "confidence": "exact_table", "protocol": "fine-tuned"},
        {"id": "p3", "model": "mn10_as", "family": "mn", "task": "esc50", "metric": "mAP", "value": 0.5,
         "unit": "fraction", "source": "other metric", "confidence": "exact_table", "protocol": "x"},
    ]
    published.write_text(yaml.safe_dump({"records": rows}))
    return results, published


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_front_of_constructed_points() -> None:
    points = [(1.0, 0.5), (2.0, 0.4), (2.0, 0.7), (3.0, 0.7), (4.0, 0.9), (0.5, 0.1), (4.0, 0.9)]
    assert pareto_front(points) == [5, 0, 2, 4, 6]  # by x; (2, .4), (3, .7) dominated; equal points both kept
    assert pareto_front([]) == []
    assert pareto_front([(1.0, 0.3)]) == [0]


def test_points_filled_hollow_and_left_out(material: tuple[Path, Path]) -> None:
    results, published = material
    found = gather_points("esc50", "macs", results, published, measure=fake_measure)
    assert found.metric == "accuracy"
    by_model = {(p.model, p.kind): p for p in found.points}
    assert by_model[("mn04", REPRODUCED)].plotted and by_model[("mn04", REPRODUCED)].x == 1.1e8
    mn40 = by_model[("mn40", PUBLISHED)]  # mapped through the mn40 card's record ids, x measured, % -> fraction
    assert mn40.plotted and mn40.score == pytest.approx(0.95) and mn40.x == 40e8
    assert by_model[("BEATs", PUBLISHED)].reason == NOT_MEASURABLE
    nonofficial = by_model[("mn10", REPRODUCED)]
    assert not nonofficial.plotted and "non-official" in nonofficial.reason
    assert ("mn10", PUBLISHED) not in by_model  # another metric


def test_files_written_and_csv_kinds(material: tuple[Path, Path], tmp_path: Path) -> None:
    results, published = material
    out = tmp_path / "out"
    paths = write_pareto(gather_points("esc50", "macs", results, published, measure=fake_measure), out)
    assert sorted(p.name for p in out.iterdir()) == [
        "pareto_esc50_accuracy_macs.csv", "pareto_esc50_accuracy_macs.png", "pareto_esc50_accuracy_macs.svg"]
    assert paths["png"].read_bytes()[:4] == b"\x89PNG" and b"<svg" in paths["svg"].read_bytes()[:2000]
    rows = {(r["model"], r["kind"]): r for r in read_csv(paths["csv"])}
    assert rows[("mn04", "reproduced")]["plotted"] == "True" and rows[("mn04", "reproduced")]["x_unit"] == "GMACs"
    assert rows[("mn40", "published")]["source"] == "paper A" and rows[("mn40", "published")]["record_id"] == "p1"
    assert rows[("BEATs", "published")]["plotted"] == "False"
    assert rows[("BEATs", "published")]["reason"].startswith("not plotted: no measured complexity")
    assert rows[("mn10", "reproduced")]["plotted"] == "False"  # non-official, not asked for
    assert {rows[k]["on_front"] for k in (("mn04", "reproduced"), ("mn40", "published"))} == {"True"}


def test_nonofficial_plotted_on_request_but_never_on_the_front(material: tuple[Path, Path], tmp_path: Path) -> None:
    results, published = material
    found = gather_points("esc50", "macs", results, published, include_nonofficial=True, measure=fake_measure)
    paths = write_pareto(found, tmp_path)
    rows = {(r["model"], r["kind"]): r for r in read_csv(paths["csv"])}
    row = rows[("mn10", "reproduced")]  # lowest MACs and best score, yet off the front
    assert row["plotted"] == "True" and row["official"] == "False" and row["on_front"] == "False"
    assert rows[("mn04", "reproduced")]["on_front"] == "True"


def test_no_points_is_a_clear_error(material: tuple[Path, Path]) -> None:
    results, published = material
    with pytest.raises(AudiobenchError, match="Nothing to plot"):
        gather_points("synthetic", "macs", results, published, measure=fake_measure)
    with pytest.raises(AudiobenchError, match="no measured latency"):  # records have latency null
        gather_points("esc50", "latency", results, published, measure=fake_measure)
    with pytest.raises(AudiobenchError, match="no task card"):
        gather_points("cardless", "macs", results, published, measure=fake_measure)
    data = yaml.safe_load(published.read_text())
    data["records"][0]["task"] = "cardless"
    published.write_text(yaml.safe_dump(data))
    with pytest.raises(AudiobenchError, match="must be named") as caught:  # no card: --metric is needed
        gather_points("cardless", "macs", results, published, measure=fake_measure)
    assert "--metric" in caught.value.hint


def test_cli_with_a_real_meta_count(material: tuple[Path, Path], tmp_path: Path) -> None:
    """End to end: the published mn01 score at mn01's MACs counted on the meta device."""
    results, published = material
    data = yaml.safe_load(published.read_text())
    data["records"].append({"id": "q1", "model": "mn01_as", "family": "mn", "task": "audioset", "metric": "mAP",
                            "value": 0.298, "unit": "fraction", "source": "README", "confidence": "exact_table",
                            "protocol": "AudioSet eval"})
    published.write_text(yaml.safe_dump(data))
    args = ["pareto", "--task", "audioset", "--metric", "mAP", "--x", "params", "--out", str(tmp_path / "o"),
            "--results", str(results), "--published", str(published), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["plotted"] == 1 and summary["front"] == ["mn01"]
    row = read_csv(Path(summary["files"]["csv"]))[0]
    assert row["kind"] == "published" and float(row["x"]) == pytest.approx(0.123783) and row["x_unit"] == "M parameters"
    bad = runner.invoke(app, ["pareto", "--task", "nosuchtask", "--metric", "mAP", "--results", str(results),
                              "--published", str(published), "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "Nothing to plot" in bad.output
