"""``rescore`` of an events record: every metric recomputed from its events predictions file."""

from __future__ import annotations

from typing import Any

from audiobench.errors import AudiobenchError
from audiobench.events.predictions import load_event_predictions
from audiobench.events.scoring import score_event_predictions
from audiobench.results import summarise


def rescore_events(record_file: Any) -> tuple[dict[str, dict[str, Any]], int]:
    """The record's metrics recomputed from the file it names, with the post-processing it records; and the
    number of clips scored."""
    record = record_file.record
    info = record.get("predictions")
    if not info:
        raise AudiobenchError(f"Record {record_file.path} has no predictions file.",
                              hint="Re-run its command to get a record with its events predictions.")
    predictions = load_event_predictions(record_file.path.with_name(info["file"]), info["sha256"])
    per_split = score_event_predictions(predictions, list(record["metrics"]), record["postprocessing"])
    return {name: summarise(values) for name, values in per_split.items()}, int(len(predictions.clip_id))
