"""`audiobench score-sed`: DESED reference values, agreement with the libraries, clear input errors.

Expected DESED values come from ../shared (README "Known reference values", event_f1.txt,
segment_f1.txt, protocols.md 4.7), never from a run of the libraries. The synthetic tests compare
score-sed with psds_eval / sed_eval / sed_scores_eval called directly on the same files.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from audiobench.cli import app
from audiobench.errors import AudiobenchError
from audiobench.metrics_sed import score_sed
from shared_material import SHARED, require

DESED = SHARED / "data" / "desed"
runner = CliRunner()
CLASSES = ["Alarm", "Cat", "Dog"]


def _reference_f1(name: str) -> dict[str, float]:
    """Micro (overall) and macro (class-wise average) F1 printed in a sed_eval report file."""
    text = require(DESED / name).read_text()
    values = [float(v) / 100 for v in re.findall(r"F-measure \(F1\)\s*:\s*([\d.]+) %", text)]
    return {"micro": values[0], "macro": values[1]}


@pytest.fixture(scope="module")
def desed_json() -> dict:
    require(DESED / "baseline_student_operating_points")
    result = runner.invoke(app, ["score-sed", "--ground-truth", str(DESED / "validation.tsv"),
                                 "--durations", str(DESED / "validation_durations.tsv"),
                                 "--detections", str(DESED / "baseline_student_operating_points"),
                                 "--f1-detections", str(DESED / "predictions0.5.csv"),
                                 "--float-parsing", "legacy", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _value(result: dict, name: str) -> float:
    return next(row["value"] for row in result["metrics"] if row["name"] == name)


def test_desed_psds_reference(desed_json: dict) -> None:
    # shared/README.md: psds_eval 0.5.3, 50 operating points: PSDS1 = 0.3345, PSDS2 = 0.5281
    assert desed_json["operating_points"] == 50 and desed_json["clips"] == 1168
    assert _value(desed_json, "PSDS1") == pytest.approx(0.3345, abs=5e-5)
    assert _value(desed_json, "PSDS2") == pytest.approx(0.5281, abs=5e-5)
    psds1 = next(row for row in desed_json["metrics"] if row["name"] == "PSDS1")
    assert psds1["implementation"] == "psds_eval" and psds1["parameters"]["dtc_threshold"] == 0.7


def test_desed_f1_reference(desed_json: dict) -> None:
    event, segment = _reference_f1("event_f1.txt"), _reference_f1("segment_f1.txt")
    for average in ("macro", "micro"):
        assert _value(desed_json, f"collar_F1_{average}") == pytest.approx(event[average], abs=5e-5)
        assert _value(desed_json, f"segment_F1_{average}") == pytest.approx(segment[average], abs=5e-5)
    # protocols.md 4.7 (DESED PSDS_Eval notebook): intersection F1 63.74 %
    assert _value(desed_json, "intersection_F1_macro") == pytest.approx(0.6374, abs=5e-5)


# ----- synthetic material -----------------------------------------------------------------------

def _write_tsv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, sep="\t", index=False)
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """30 clips of 10 s, 3 classes; frame scores (0.1 s hop) = noisy event activity."""
    import sed_scores_eval.base_modules.detection as detection

    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("sed")
    clips = [f"clip{i}.wav" for i in range(30)]
    truth_rows, scores = [], {}
    times = np.round(np.arange(101) * 0.1, 6)
    for clip in clips:
        activity = np.zeros((100, len(CLASSES)))
        for c, label in enumerate(CLASSES):
            start = rng.integers(0, 60)
            length = rng.integers(5, 40)
            truth_rows.append((clip, times[start], times[start + length], label))
            activity[start:start + length, c] = 1.0
        noise = np.apply_along_axis(np.convolve, 0, rng.uniform(0, 1, (108, len(CLASSES))), np.ones(9) / 9, "valid")
        frame_scores = np.clip(0.35 * activity + 1.5 * (noise - 0.5) + 0.3, 0, 1)
        scores[clip[:-4]] = pd.DataFrame({"onset": times[:-1], "offset": times[1:],
                                          **{label: frame_scores[:, c] for c, label in enumerate(CLASSES)}})
    truth = _write_tsv(root / "gt.tsv", pd.DataFrame(truth_rows, columns=["filename", "onset", "offset", "event_label"]))
    durations = _write_tsv(root / "dur.tsv", pd.DataFrame({"filename": clips, "duration": 10.0}))
    (root / "scores").mkdir()
    for clip, frame in scores.items():
        _write_tsv(root / "scores" / f"{clip}.tsv", frame)
    (root / "ops").mkdir()
    for threshold in np.round(np.arange(0.05, 1.0, 0.1), 2):
        events = detection.scores_to_event_list(scores, thresholds=np.full(len(CLASSES), threshold))
        rows = [(f"{clip}.wav", on, off, label) for clip, items in events.items() for on, off, label in items]
        _write_tsv(root / "ops" / f"predictions_th_{threshold:.2f}.tsv",
                   pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"]))
    events = detection.scores_to_event_list(scores, thresholds=np.full(len(CLASSES), 0.5))
    rows = [(f"{clip}.wav", on, off, label) for clip, items in events.items() for on, off, label in items]
    _write_tsv(root / "at05.tsv", pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"]))
    return {"root": root, "truth": truth, "durations": durations, "scores": root / "scores", "ops": root / "ops",
            "at05": root / "at05.tsv"}


def test_scores_agree_with_sed_scores_eval(synthetic: dict[str, Path]) -> None:
    import sed_scores_eval as sse

    result = score_sed(synthetic["truth"], synthetic["durations"], scores=synthetic["scores"], jobs=1)
    args = dict(scores=str(synthetic["scores"]), ground_truth=str(synthetic["truth"]))
    psds1 = sse.intersection_based.psds(**args, audio_durations=str(synthetic["durations"]), dtc_threshold=0.7,
                                        gtc_threshold=0.7, cttc_threshold=None, alpha_ct=0, alpha_st=1, max_efpr=100)
    psds2 = sse.intersection_based.psds(**args, audio_durations=str(synthetic["durations"]), dtc_threshold=0.1,
                                        gtc_threshold=0.1, cttc_threshold=0.3, alpha_ct=0.5, alpha_st=1, max_efpr=100)
    inter = sse.intersection_based.fscore(**args, threshold=0.5, dtc_threshold=0.5, gtc_threshold=0.5)[0]
    collar = sse.collar_based.fscore(**args, threshold=0.5, onset_collar=0.2, offset_collar=0.2,
                                     offset_collar_rate=0.2)[0]
    segment = sse.segment_based.fscore(**args, audio_durations=str(synthetic["durations"]), threshold=0.5,
                                       segment_length=1.0)[0]
    expected = {"PSDS1": psds1[0], "PSDS2": psds2[0], "intersection_F1_macro": inter["macro_average"],
                "collar_F1_macro": collar["macro_average"], "collar_F1_micro": collar["micro_average"],
                "segment_F1_macro": segment["macro_average"], "segment_F1_micro": segment["micro_average"]}
    assert {row["name"]: row["value"] for row in result["metrics"]} == pytest.approx(expected, abs=1e-12)
    assert all(row["implementation"] == "sed_scores_eval" for row in result["metrics"])
    assert 0 < expected["PSDS1"] < 1 and 0 < expected["collar_F1_macro"] < 1, expected


def test_detections_agree_with_psds_eval_and_sed_eval(synthetic: dict[str, Path]) -> None:
    from psds_eval import PSDSEval

    from audiobench.metrics_sed.detections import sed_eval_f1
    from audiobench.sed_io import read_durations, read_ground_truth

    result = score_sed(synthetic["truth"], synthetic["durations"], detections=synthetic["ops"],
                       f1_detections=synthetic["at05"], jobs=2)
    got = {row["name"]: row["value"] for row in result["metrics"]}
    truth = pd.read_csv(synthetic["truth"], sep="\t")
    durations = pd.read_csv(synthetic["durations"], sep="\t")
    tables = [pd.read_csv(p, sep="\t") for p in sorted(synthetic["ops"].glob("*.tsv"))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (dtc, gtc, cttc, alpha_ct) in {"PSDS1": (0.7, 0.7, 0.3, 0), "PSDS2": (0.1, 0.1, 0.3, 0.5)}.items():
            evaluator = PSDSEval(dtc, gtc, cttc, ground_truth=truth, metadata=durations)
            for table in tables:  # one by one, as the library is meant to be used
                evaluator.add_operating_point(table)
            assert got[name] == evaluator.psds(alpha_ct=alpha_ct, alpha_st=1, max_efpr=100).value
        evaluator = PSDSEval(0.5, 0.5, 0.3, ground_truth=truth, metadata=durations)
        assert got["intersection_F1_macro"] == evaluator.compute_macro_f_score(pd.read_csv(synthetic["at05"], sep="\t"))[0]
    lengths = read_durations(synthetic["durations"])
    direct = sed_eval_f1(read_ground_truth(synthetic["truth"], lengths), pd.read_csv(synthetic["at05"], sep="\t"))
    assert got["collar_F1_macro"] == direct["collar"]["macro"] and got["segment_F1_micro"] == direct["segment"]["micro"]
    serial = score_sed(synthetic["truth"], synthetic["durations"], detections=synthetic["ops"], jobs=1)
    assert [r["value"] for r in serial["metrics"]] == [got["PSDS1"], got["PSDS2"]]
    assert {m["name"] for m in serial["missing"]} >= {"collar_F1_macro", "intersection_F1_macro"}


# ----- bad input ---------------------------------------------------------------------------------

def _ops_copy(synthetic: dict[str, Path], tmp_path: Path) -> Path:
    ops = tmp_path / "ops"
    ops.mkdir()
    for path in synthetic["ops"].iterdir():
        (ops / path.name).write_text(path.read_text())
    return ops


def _error(synthetic: dict[str, Path], **kwargs) -> str:
    with pytest.raises(AudiobenchError) as caught:
        score_sed(kwargs.pop("truth", synthetic["truth"]), kwargs.pop("durations", synthetic["durations"]),
                  jobs=1, **kwargs)
    return str(caught.value)


def test_unknown_label_names_file_and_row(synthetic: dict[str, Path], tmp_path: Path) -> None:
    ops = _ops_copy(synthetic, tmp_path)
    path = ops / "predictions_th_0.05.tsv"
    frame = pd.read_csv(path, sep="\t")
    frame.loc[2, "event_label"] = "Unicorn"
    _write_tsv(path, frame)
    message = _error(synthetic, detections=ops)
    assert "predictions_th_0.05.tsv, row 3" in message and "Unicorn" in message


def test_swapped_onset_offset_values_caught(synthetic: dict[str, Path], tmp_path: Path) -> None:
    ops = _ops_copy(synthetic, tmp_path)
    path = ops / "predictions_th_0.15.tsv"
    frame = pd.read_csv(path, sep="\t")
    frame = frame.rename(columns={"onset": "offset", "offset": "onset"})  # right names, values swapped
    _write_tsv(path, frame)
    message = _error(synthetic, detections=ops)
    assert "predictions_th_0.15.tsv, row 1" in message and "is after offset" in message


def test_column_order_is_free(synthetic: dict[str, Path], tmp_path: Path) -> None:
    ops = _ops_copy(synthetic, tmp_path)
    for path in ops.iterdir():
        frame = pd.read_csv(path, sep="\t")
        _write_tsv(path, frame[["event_label", "offset", "filename", "onset"]])
    shuffled = score_sed(synthetic["truth"], synthetic["durations"], detections=ops, jobs=1)
    plain = score_sed(synthetic["truth"], synthetic["durations"], detections=synthetic["ops"], jobs=1)
    assert [r["value"] for r in shuffled["metrics"]] == [r["value"] for r in plain["metrics"]]


def test_missing_column_and_clip_without_duration(synthetic: dict[str, Path], tmp_path: Path) -> None:
    ops = _ops_copy(synthetic, tmp_path)
    path = ops / "predictions_th_0.25.tsv"
    _write_tsv(path, pd.read_csv(path, sep="\t").drop(columns=["offset"]))
    assert "header has no column offset" in _error(synthetic, detections=ops)
    durations = pd.read_csv(synthetic["durations"], sep="\t")
    short = _write_tsv(tmp_path / "dur.tsv", durations[durations.filename != "clip3.wav"])
    message = _error(synthetic, durations=short, detections=synthetic["ops"])
    assert "gt.tsv, row" in message and "'clip3.wav' is not in the durations file" in message


def test_empty_operating_point(synthetic: dict[str, Path], tmp_path: Path) -> None:
    ops = _ops_copy(synthetic, tmp_path)
    (ops / "predictions_th_0.99.tsv").write_text("filename\tonset\toffset\tevent_label\n")
    result = score_sed(synthetic["truth"], synthetic["durations"], detections=ops, jobs=1)
    assert result["operating_points"] == 11  # header only: a valid point that detects nothing
    (ops / "predictions_th_0.99.tsv").write_text("")
    assert "predictions_th_0.99.tsv: the file is empty" in _error(synthetic, detections=ops)


def test_score_table_errors(synthetic: dict[str, Path], tmp_path: Path) -> None:
    scores = tmp_path / "scores"
    scores.mkdir()
    for path in synthetic["scores"].iterdir():
        (scores / path.name).write_text(path.read_text())
    frame = pd.read_csv(scores / "clip1.tsv", sep="\t").rename(columns={"Dog": "Wolf"})
    _write_tsv(scores / "clip1.tsv", frame)
    assert "clip1.tsv: unknown class column(s) Wolf" in _error(synthetic, scores=scores)
    (scores / "clip1.tsv").unlink()
    assert "no score table for clip 'clip1'" in _error(synthetic, scores=scores)


def test_cli_reports_error_without_traceback(synthetic: dict[str, Path], tmp_path: Path) -> None:
    ops = _ops_copy(synthetic, tmp_path)
    path = ops / "predictions_th_0.05.tsv"
    frame = pd.read_csv(path, sep="\t")
    frame.loc[0, "event_label"] = "Unicorn"
    _write_tsv(path, frame)
    result = runner.invoke(app, ["score-sed", "--ground-truth", str(synthetic["truth"]), "--durations",
                                 str(synthetic["durations"]), "--detections", str(ops)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "row 1" in result.output and "Unicorn" in result.output
