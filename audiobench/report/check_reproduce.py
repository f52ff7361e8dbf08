"""``check`` section 3: re-run what is cheap enough for CI and compare with what was recorded.

* Every record in the results directory is re-run from the command in its provenance, with fresh
  embeddings (a temporary cache, so a cached embedding cannot hide a changed model), and must give
  its per-split numbers again within the spec's tolerance. Records whose data or checkpoint is not
  on this machine are skipped and say what is missing.
* Reference predictions measured on real files (the spec's ``predictions`` list, each with its source)
  are recomputed with ``predict``; reference SED detections (the spec's ``sed`` list) are re-scored with
  ``score-sed``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import tempfile
from pathlib import Path
from typing import Any, Iterator

from audiobench.errors import AudiobenchError
from audiobench.report.checks import FAIL, PASS, SKIP, CheckRow, within
from audiobench.report.records import RecordFile

SECTION = "reproduce"


@contextlib.contextmanager
def fresh_cache() -> Iterator[Path]:
    """A temporary ``AUDIOBENCH_CACHE`` (checkpoints are not downloaded: runs use explicit paths or skip)."""
    previous = os.environ.get("AUDIOBENCH_CACHE")
    with tempfile.TemporaryDirectory(prefix="audiobench-check-") as directory:
        os.environ["AUDIOBENCH_CACHE"] = directory
        try:
            yield Path(directory)
        finally:
            if previous is None:
                os.environ.pop("AUDIOBENCH_CACHE", None)
            else:
                os.environ["AUDIOBENCH_CACHE"] = previous


def _run_arguments(record: RecordFile) -> list[str] | None:
    words = shlex.split(record.record.get("provenance", {}).get("command") or "")
    if len(words) < 2 or words[0] != "audiobench" or words[1] != "run":
        return None
    return [w for w in words[2:] if w != "--json"]


def _missing_inputs(options: Any) -> list[str]:
    return [str(path) for path in (options.data_dir, options.checkpoint) if path is not None and not Path(path).exists()]


def reproduce_record(record: RecordFile, tolerance: float) -> list[CheckRow]:
    """Re-run ``record``'s command and compare every per-split value of its primary metric."""
    from audiobench.cli import parse_run_command
    from audiobench.runner import run

    name = record.path.name
    arguments = _run_arguments(record)
    if arguments is None:
        return [CheckRow(SECTION, name, "re-run", None, None, "-", SKIP, "the record names no `audiobench run` command")]
    options = parse_run_command(arguments)
    missing = _missing_inputs(options)
    if missing:
        return [CheckRow(SECTION, name, "re-run", None, None, "-", SKIP, f"not on this machine: {', '.join(missing)}")]
    expected = record.score()
    with fresh_cache() as cache:
        options = dataclasses.replace(options, output_dir=cache / "results", device="cpu")
        try:
            again, _ = run(options)
        except AudiobenchError as error:
            return [CheckRow(SECTION, name, "re-run", None, expected["mean"], "-", FAIL, f"the re-run failed: {error}")]
    measured = again["metrics"][record.primary_metric]
    rows = []
    for split, value in {"mean": expected["mean"], **expected["per_split"]}.items():
        got = measured["mean"] if split == "mean" else measured["per_split"].get(split)
        ok = (got is None) if value is None else (got is not None and within(got, value, absolute=tolerance))
        rows.append(CheckRow(SECTION, name, f"{record.primary_metric} {split} (re-run)", got, value, f"±{tolerance}",
                             PASS if ok else FAIL, "fresh embeddings" if ok else "the re-run gives another number"))
    return rows


def reproduce_prediction(case: dict[str, Any]) -> list[CheckRow]:
    """Recompute a reference prediction case (model + checkpoint + audio file -> class probabilities)."""
    from audiobench.predict import predict_file

    subject = case["id"]
    missing = [case[key] for key in ("checkpoint", "audio") if not Path(case[key]).exists()]
    if missing:
        return [CheckRow(SECTION, subject, "prediction", None, None, "-", SKIP, f"not on this machine: {', '.join(missing)}")]
    expected: dict[str, float] = case["expected"]
    with fresh_cache():
        result = predict_file(Path(case["audio"]), case["model"], checkpoint=Path(case["checkpoint"]),
                              top_k=max(len(expected), 10), device="cpu")
    scores = {row["label"]: row["score"] for row in result["top"]}
    tolerance = float(case["tolerance"])
    return [CheckRow(SECTION, subject, label, None if label not in scores else round(scores[label], 4), value,
                     f"±{tolerance}", PASS if label in scores and within(scores[label], value, absolute=tolerance)
                     else FAIL, case["source"]) for label, value in expected.items()]


def reproduce_sed(case: dict[str, Any]) -> list[CheckRow]:
    """Re-score reference SED detections (``score-sed``) and compare with the published figures."""
    from audiobench.metrics_sed import score_sed

    subject = case["id"]
    inputs = {key: Path(case[key]) for key in ("ground_truth", "durations", "detections", "f1_detections")
              if case.get(key)}
    missing = [str(path) for path in inputs.values() if not path.exists()]
    if missing:
        return [CheckRow(SECTION, subject, "score-sed", None, None, "-", SKIP, f"not on this machine: {', '.join(missing)}")]
    result = score_sed(inputs["ground_truth"], inputs["durations"], detections=inputs.get("detections"),
                       f1_detections=inputs.get("f1_detections"), float_parsing=case.get("float_parsing", "exact"))
    values = {row["name"]: row["value"] for row in result["metrics"]}
    tolerance = float(case["tolerance"])
    return [CheckRow(SECTION, subject, name, None if name not in values else round(values[name], 6), expected,
                     f"±{tolerance}", PASS if name in values and within(values[name], expected, absolute=tolerance)
                     else FAIL, case["source"]) for name, expected in case["expected"].items()]


def check_reproductions(records: list[RecordFile], spec: dict[str, Any]) -> list[CheckRow]:
    """Re-run the records and the reference prediction and SED-scoring cases of the spec."""
    tolerance = float(spec.get("records", {}).get("abs", 0.0))
    rows: list[CheckRow] = []
    for record in records:
        rows.extend(reproduce_record(record, tolerance))
    for case in spec.get("predictions", []) or []:
        rows.extend(reproduce_prediction(case))
    for case in spec.get("sed", []) or []:
        rows.extend(reproduce_sed(case))
    return rows
