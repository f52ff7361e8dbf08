"""Result records: one JSON file per run, versioned schema (documented in docs/result_schema.md)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from audiobench.predictions import Predictions

SCHEMA_VERSION = 2


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def summarise(per_split: dict[str, float]) -> dict[str, Any]:
    """Mean, population standard deviation (ddof=0) and per-split values of a metric.

    An undefined or infinite value (e.g. mAP of a split without positives, d' of an AUC of 1) is recorded as
    ``null`` (JSON has no NaN or infinity), and so is the mean and std over splits that include one.
    """
    values = np.array(list(per_split.values()), dtype=float)
    with np.errstate(invalid="ignore"):  # inf - inf in the std of an infinite value: recorded as null
        mean, std = values.mean(), values.std(ddof=0)
    return {"mean": _finite_or_none(mean), "std": _finite_or_none(std), "std_ddof": 0,
            "per_split": {name: _finite_or_none(v) for name, v in per_split.items()}}


def record_file_name(record: dict[str, Any], suffix: int = 0) -> str:
    """``<task>__<model>__<official|nonofficial>__<UTC timestamp>[_N].json`` (names made file-system safe).

    ``suffix`` N > 0 tells apart records of the same task, model and protocol written in the same second.
    """
    stamp = re.sub(r"[^0-9T]", "", record["provenance"]["date"].split("+")[0])
    kind = "official" if record["protocol"]["official"] else "nonofficial"
    task, model = (re.sub(r"[^A-Za-z0-9._-]", "_", record[k]["name"]) for k in ("task", "model"))
    return f"{task}__{model}__{kind}__{stamp}{f'_{suffix}' if suffix else ''}.json"


MAX_SAME_SECOND = 10_000  # records of one task/model/protocol in one second before giving up


def write_record(record: dict[str, Any], output_dir: Path, predictions: "Predictions | None" = None) -> Path:
    """Write ``record`` (and its ``predictions`` file beside it) atomically under ``output_dir``; return its path.

    An existing record is never replaced: when the name is taken (another run in the same second), the
    next free ``_1``, ``_2``, ... suffix is used. Each file is written completely to a temporary name first
    and then hard-linked to its final name, which fails instead of overwriting (exclusive creation). The
    predictions file ``<stem>.predictions.npz`` is placed first and the record names it with its sha256.
    """
    from audiobench.predictions import SUFFIX, sha256_bytes

    output_dir.mkdir(parents=True, exist_ok=True)
    payload = predictions.to_bytes() if predictions is not None else None
    for suffix in range(MAX_SAME_SECOND):
        name = record_file_name({"schema_version": SCHEMA_VERSION, **record}, suffix)
        stem = name[: -len(".json")]
        placed: Path | None = None
        if payload is not None:
            placed = output_dir / (stem + SUFFIX)
            if not _write_exclusively(placed, payload):
                continue
            record = {**record, "predictions": {"file": placed.name, "sha256": sha256_bytes(payload)}}
        text = json.dumps({"schema_version": SCHEMA_VERSION, **record}, indent=1, sort_keys=False) + "\n"
        try:
            if _write_exclusively(output_dir / name, text.encode()):
                return output_dir / name
        except BaseException:
            if placed is not None:
                placed.unlink(missing_ok=True)
            raise
        if placed is not None:
            placed.unlink(missing_ok=True)
    raise FileExistsError(f"{output_dir}: {MAX_SAME_SECOND} records named like "
                          f"{record_file_name({'schema_version': SCHEMA_VERSION, **record})} already exist")


def _write_exclusively(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless it exists (False then); never leaves a temporary file behind."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.part")
    try:
        with open(temporary, "xb") as stream:  # a fresh name; permissions follow the umask
            stream.write(data)
        try:
            _place_exclusively(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _place_exclusively(temporary: Path, path: Path) -> None:
    """Give ``temporary``'s content the name ``path``; FileExistsError if ``path`` exists (never replaced)."""
    try:
        os.link(temporary, path)  # atomic, and fails on an existing name
        return
    except FileExistsError:
        raise
    except OSError:  # file system without hard links: reserve the name, then rename over the reservation
        pass
    with open(path, "x"):
        pass
    os.replace(temporary, path)


def check_writable(output_dir: Path) -> None:
    """Fail now, before any work, when records cannot be written to ``output_dir``."""
    from audiobench.errors import AudiobenchError

    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".write-test.{os.getpid()}-{uuid.uuid4().hex[:8]}.part"
        with open(probe, "x", encoding="utf-8"):
            pass
        os.unlink(probe)
    except OSError as error:
        raise AudiobenchError(f"Output directory {output_dir} is not writable ({error.strerror or error}).",
                              hint="Choose another directory with --output-dir, or fix its permissions.") from None


def read_record(path: Path) -> dict[str, Any]:
    """Read a record; older schema versions are upgraded on read (version 1 kept predictions inline)."""
    from audiobench.errors import AudiobenchError

    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise AudiobenchError(f"Result record {path} cannot be read ({error}).",
                              hint="Point at a JSON record written by `audiobench run`.") from None
    version = record.get("schema_version") if isinstance(record, dict) else None
    if version == 1:
        record = {**record, "schema_version": SCHEMA_VERSION, "predictions": None}  # no predictions file
    elif version != SCHEMA_VERSION:
        raise AudiobenchError(f"Result record {path} has schema version {version!r}; this audiobench reads "
                              f"versions 1 to {SCHEMA_VERSION}.", hint="Update audiobench, or re-run the record.")
    return record
