"""``audiobench rescore``: recompute every metric of a record from its predictions file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audiobench.predictions import Predictions, score_groups, score_splits
from audiobench.registry import METRICS
from audiobench.report.records import load_record
from audiobench.results import summarise

GROUP_SEPARATOR = "@"  # "accuracy@group=s4", "accuracy@unseen": a metric within a group of clips


def score_record_metrics(predictions: Predictions, metrics: list[str],
                         groups: dict[str, list[str]] | None = None) -> dict[str, dict[str, Any]]:
    """Every metric of a record (per split, mean, std), plus each metric within every clip group and named
    set of groups (``<metric>@group=<value>``, ``<metric>@<set>``) when the predictions carry groups."""
    result = {}
    for name in metrics:
        metric = METRICS.get(name)
        result[name] = summarise(score_splits(predictions, metric))
        for group, per_split in score_groups(predictions, metric, groups).items():
            result[f"{name}{GROUP_SEPARATOR}{group}"] = summarise(per_split)
    return result


def _same(recorded: Any, recomputed: Any) -> bool:
    """Identical values; an undefined metric (recorded as null: NaN or infinite) equals itself here."""
    if recorded is None or recomputed is None:
        return recorded is None and recomputed is None
    return recorded == recomputed


def rescore(path: Path) -> dict[str, Any]:
    """For each metric of the record: the recorded and recomputed values and whether they are identical."""
    record_file = load_record(path)
    if record_file.record["task"].get("label_type") == "events":  # frame scores: audiobench.events
        from audiobench.events.rescore import rescore_events

        recomputed, clips = rescore_events(record_file)
    else:
        predictions = record_file.predictions()
        metrics = [name for name in record_file.record["metrics"] if GROUP_SEPARATOR not in name]
        recomputed = score_record_metrics(predictions, metrics, record_file.record.get("groups"))
        clips = len(predictions.clip_id)
    rows = []
    for name, block in record_file.record["metrics"].items():
        again = recomputed.get(name, {"per_split": {}})
        for key in ("mean", "std"):
            rows.append({"metric": name, "split": key, "recorded": block[key], "recomputed": again.get(key),
                         "equal": _same(block[key], again.get(key))})
        for split, value in block["per_split"].items():
            value_again = again["per_split"].get(split)
            rows.append({"metric": name, "split": split, "recorded": value, "recomputed": value_again,
                         "equal": _same(value, value_again)})
    return {"record": str(record_file.path), "predictions": record_file.record["predictions"]["file"],
            "clips": int(clips), "rows": rows, "identical": all(r["equal"] for r in rows)}
