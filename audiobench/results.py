"""Result records: one JSON file per run, versioned schema (documented in docs/result_schema.md)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1


def summarise(per_split: dict[str, float]) -> dict[str, Any]:
    """Mean, population standard deviation (ddof=0) and per-split values of a metric."""
    values = np.array(list(per_split.values()), dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=0)), "std_ddof": 0,
            "per_split": {name: float(v) for name, v in per_split.items()}}


def record_file_name(record: dict[str, Any]) -> str:
    """``<task>__<model>__<official|nonofficial>__<UTC timestamp>.json`` (names made file-system safe)."""
    stamp = re.sub(r"[^0-9T]", "", record["provenance"]["date"].split("+")[0])
    kind = "official" if record["protocol"]["official"] else "nonofficial"
    task, model = (re.sub(r"[^A-Za-z0-9._-]", "_", record[k]["name"]) for k in ("task", "model"))
    return f"{task}__{model}__{kind}__{stamp}.json"


def write_record(record: dict[str, Any], output_dir: Path) -> Path:
    """Write ``record`` atomically under ``output_dir`` and return its path."""
    record = {"schema_version": SCHEMA_VERSION, **record}
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / record_file_name(record)
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(record, indent=1, sort_keys=False) + "\n")
    os.replace(partial, path)
    return path


def read_record(path: Path) -> dict[str, Any]:
    """Read a record, checking the schema version."""
    record = json.loads(Path(path).read_text())
    if record.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema version {record.get('schema_version')} is not {SCHEMA_VERSION}")
    return record
