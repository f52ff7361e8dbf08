"""The official-data rule and clear metadata errors, on ESC-50 trees in the official layout.

A result is official only when every clip of the official list is present and used exactly once;
duplicates are refused, and metadata that is not the official list gives a labelled non-official run.
Ordinary metadata mistakes give one line naming the file, the row and the column (exit code 2).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from shared_material import ESC50 as SHARED_ESC50, require
from audiobench import provenance
from audiobench.cli import app
from audiobench.datasets.esc50 import load_esc50
from audiobench.errors import DatasetError
from audiobench.protocols.splits import official_folds

runner = CliRunner()
FIVE_FOLDS = [1, 2, 3, 4, 5]


@pytest.fixture(autouse=True)
def _stub_git(monkeypatch) -> None:
    monkeypatch.setattr(provenance, "git_revision", lambda directory=None: None)


def _real_rows() -> list[dict[str, str]]:
    with open(require(SHARED_ESC50 / "meta" / "esc50.csv"), newline="") as handle:
        return list(csv.DictReader(handle))


def _tree(root: Path, rows: list[dict[str, str]], seconds: float = 0.05) -> Path:
    """An ESC-50 tree in the official layout: ``rows`` as meta/esc50.csv, a short generated wav per row."""
    (root / "meta").mkdir(parents=True)
    (root / "audio").mkdir()
    rng = np.random.default_rng(0)
    for row in rows:
        path = root / "audio" / row["filename"]
        if not path.exists():
            sf.write(path, (0.1 * rng.standard_normal(int(44100 * seconds))).astype(np.float32), 44100,
                     subtype="PCM_16")
    _write_meta(root, rows)
    return root


def _write_meta(root: Path, rows: list[dict[str, str]], encoding: str = "utf-8") -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    meta = root / "meta" / "esc50.csv"
    meta.write_bytes(buffer.getvalue().encode(encoding))
    return meta


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _run(root: Path, tmp_path: Path, *extra: str):
    return runner.invoke(app, ["run", "--task", "esc50", "--model", "logmel-stats", "--data-dir", str(root),
                               "--workers", "0", "-o", str(tmp_path / "results"), *extra])


# --------------------------------------------------------------------------- official or not


def test_complete_official_list_is_official(tmp_path: Path) -> None:
    index = load_esc50(_tree(tmp_path / "esc50", _real_rows()))
    coverage = index.coverage()
    assert coverage.official and coverage.present == coverage.expected == 2000
    plan = official_folds(index, FIVE_FOLDS)
    assert plan.official and plan.description == "official 5-fold leave-one-fold-out"
    assert all(len(split.test) == 400 for split in plan.splits)


def test_400_of_2000_rows_is_not_official(tmp_path: Path) -> None:
    rows = _real_rows()[::5]  # 400 rows, from every fold
    root = _tree(tmp_path / "esc50", rows)
    plan = official_folds(load_esc50(root), FIVE_FOLDS)
    assert not plan.official
    assert "400 of 2000 clips" in plan.description and "not the official list" in plan.description
    result = _run(root, tmp_path)
    assert result.exit_code == 0, result.output
    (record_path,) = (tmp_path / "results").glob("*.json")
    assert record_path.name.startswith("esc50__logmel-stats__nonofficial__")
    import json

    record = json.loads(record_path.read_text())
    assert record["protocol"]["official"] is False and record["dataset"]["official_data"] is False
    assert record["dataset"]["expected_clips"] == 2000 and record["dataset"]["clips"] == 400


def test_changed_labels_are_not_official(tmp_path: Path) -> None:
    rows = _real_rows()
    rows[0] = {**rows[0], "target": str((int(rows[0]["target"]) + 1) % 50)}
    index = load_esc50(_tree(tmp_path / "esc50", rows))
    assert not index.coverage().official and "not the official list" in index.coverage().summary()


def test_missing_clips_are_counted_and_named(tmp_path: Path) -> None:
    rows = _real_rows()
    root = _tree(tmp_path / "esc50", rows)
    gone = rows[7]["filename"]
    (root / "audio" / gone).unlink()
    index = load_esc50(root)
    coverage = index.coverage()
    assert not coverage.official and coverage.missing == [gone] and "1999 of 2000 clips" in coverage.summary()
    assert index.manifest()["missing"] == [gone]


@pytest.mark.parametrize("where", ["same fold", "two folds"])
def test_duplicate_rows_are_refused(tmp_path: Path, where: str) -> None:
    rows = _real_rows()[::5]
    duplicate = dict(rows[3])
    if where == "two folds":
        duplicate["fold"] = str(int(duplicate["fold"]) % 5 + 1)
    root = _tree(tmp_path / "esc50", rows + [duplicate])
    with pytest.raises(DatasetError) as info:
        load_esc50(root)
    message = str(info.value)
    assert "row 5" in message and f"row {len(rows) + 2}" in message and duplicate["filename"] in message
    assert ("two folds" in message) == (where == "two folds")
    result = _run(root, tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").glob("*.json"))


def test_same_clip_as_wav_and_flac_rows_is_a_duplicate(tmp_path: Path) -> None:
    rows = _real_rows()[::5]
    twin = {**rows[0], "filename": rows[0]["filename"].replace(".wav", ".flac")}
    with pytest.raises(DatasetError, match="same clip"):
        load_esc50(_tree(tmp_path / "esc50", rows + [twin]))


# --------------------------------------------------------------------------- clear metadata errors


def _small_tree(tmp_path: Path) -> tuple[Path, list[dict[str, str]]]:
    rows = _real_rows()[::50]  # 40 rows
    return _tree(tmp_path / "esc50", rows), rows


BAD_FIELDS = {
    "fold x": ("fold", "x", "is not an integer"),
    "target -1": ("target", "-1", "out of range"),
    "target 50": ("target", "50", "out of range"),
    "empty fold": ("fold", "", "is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_FIELDS))
def test_bad_field_names_file_row_and_column(tmp_path: Path, case: str) -> None:
    root, rows = _small_tree(tmp_path)
    column, value, problem = BAD_FIELDS[case]
    rows[2] = {**rows[2], column: value}
    meta = _write_meta(root, rows)
    result = _run(root, tmp_path)
    text = _flat(result.stderr)
    assert result.exit_code == 2, result.output
    assert str(meta.name) in text and "row 4" in text and f"column '{column}'" in text and problem in text
    assert "please report" not in text and "Traceback" not in result.output


def test_missing_column(tmp_path: Path) -> None:
    root, rows = _small_tree(tmp_path)
    _write_meta(root, [{k: v for k, v in row.items() if k != "fold"} for row in rows])
    result = _run(root, tmp_path)
    text = _flat(result.stderr)
    assert result.exit_code == 2 and "row 1" in text and "'fold'" in text and "please report" not in text


def test_latin1_metadata(tmp_path: Path) -> None:
    root, rows = _small_tree(tmp_path)
    rows[5] = {**rows[5], "category": "caf\u00e9"}
    _write_meta(root, rows, encoding="latin-1")
    result = _run(root, tmp_path)
    text = _flat(result.stderr)
    assert result.exit_code == 2 and "row 7" in text and "UTF-8" in text and "please report" not in text


def test_bom_prefixed_metadata_is_read(tmp_path: Path) -> None:
    root, rows = _small_tree(tmp_path)
    _write_meta(root, rows, encoding="utf-8-sig")
    index = load_esc50(root)
    assert len(index.clips) == 40


def test_empty_metadata_file(tmp_path: Path) -> None:
    root, _ = _small_tree(tmp_path)
    (root / "meta" / "esc50.csv").write_bytes(b"")
    result = _run(root, tmp_path)
    assert result.exit_code == 2 and "is empty" in _flat(result.stderr) and "please report" not in result.output


def test_directory_where_a_clip_should_be(tmp_path: Path) -> None:
    root, rows = _small_tree(tmp_path)
    clip = root / "audio" / rows[1]["filename"]
    clip.unlink()
    clip.mkdir()
    result = _run(root, tmp_path)
    text = _flat(result.stderr)
    assert result.exit_code == 2 and rows[1]["filename"] in text and "directory" in text
    assert "please report" not in text


# --------------------------------------------------------------------------- audio errors in workers


def test_unreadable_clip_in_a_worker_names_the_file(tmp_path: Path) -> None:
    rows = _real_rows()[::5]  # 8 clips per class, so a 2-fold CV runs
    root = _tree(tmp_path / "esc50", rows)
    bad = root / "audio" / rows[3]["filename"]
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    result = runner.invoke(app, ["run", "--task", "esc50", "--model", "logmel-stats", "--data-dir", str(root),
                                 "--cv", "2", "--workers", "1", "-o", str(tmp_path / "results")])
    text = _flat(result.stderr)
    assert result.exit_code == 2, result.output
    assert bad.name in text and "Traceback" not in result.output and "worker" not in text.lower()
    assert "remove" in text  # how to skip it


# --------------------------------------------------------------------------- output directory


def test_unwritable_output_dir_fails_before_any_work(tmp_path: Path, monkeypatch) -> None:
    import audiobench.runner as runner_module

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    called = []
    monkeypatch.setattr(runner_module, "get_task", lambda name: called.append(name))
    result = runner.invoke(app, ["run", "--task", "synthetic", "--model", "logmel-stats", "-o", str(blocker / "out")])
    assert result.exit_code == 2 and "not writable" in _flat(result.stderr) and called == []


def test_interrupted_record_write_leaves_no_part_file(tmp_path: Path, monkeypatch) -> None:
    from audiobench import results

    def interrupted(temporary, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(results, "_place_exclusively", interrupted)
    record = {"task": {"name": "t"}, "model": {"name": "m"}, "protocol": {"official": False},
              "provenance": {"date": "2026-11-29T00:00:00+00:00"}}
    with pytest.raises(KeyboardInterrupt):
        results.write_record(record, tmp_path)
    assert list(tmp_path.iterdir()) == []
