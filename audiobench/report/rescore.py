"""``audiobench rescore``: recompute every metric of a record from its predictions file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audiobench.predictions import score_splits
from audiobench.registry import METRICS
from audiobench.report.records import load_record
from audiobench.results import summarise


def rescore(path: Path) -> dict[str, Any]:
    """For each metric of the record: the recorded and recomputed values and whether they are identical."""
    record_file = load_record(path)
    predictions = record_file.predictions()
    rows = []
    for name, block in record_file.record["metrics"].items():
        recomputed = summarise(score_splits(predictions, METRICS.get(name)))
        for key in ("mean", "std"):
            rows.append({"metric": name, "split": key, "recorded": block[key], "recomputed": recomputed[key],
                         "equal": block[key] == recomputed[key]})
        for split, value in block["per_split"].items():
            again = recomputed["per_split"].get(split)
            rows.append({"metric": name, "split": split, "recorded": value, "recomputed": again,
                         "equal": value == again})
    return {"record": str(record_file.path), "predictions": record_file.record["predictions"]["file"],
            "clips": int(len(predictions.clip_id)), "rows": rows, "identical": all(r["equal"] for r in rows)}
