"""The on-disk cache of complexity counts, readable without torch or the model.

An entry is keyed by the model's fingerprint, the torch version and the counting code's version; it holds
the count and a checksum, and is used only when the checksum verifies and its model name and network
parameter count agree with the model's (a hand-edited entry is counted again).
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

from audiobench.atomic import atomic_write_bytes
from audiobench.cache import stable_hash
from audiobench.cachedir import cache_subdir
from audiobench.code_version import implementation_version

COUNTER_MODULE = "audiobench.complexity"


def entry_path(fingerprint: dict[str, Any]) -> Path:
    """Where the count for a model with ``fingerprint`` is cached."""
    key = stable_hash({"model": fingerprint, "torch": version("torch"),
                       "counter": implementation_version([COUNTER_MODULE])})
    return cache_subdir("complexity") / f"{key[:24]}.json"


def entry_problem(path: Path, name: str, network_params: int) -> str | None:
    """Why the entry at ``path`` cannot be used for model ``name`` with ``network_params`` (None when it can)."""
    try:
        entry = json.loads(path.read_text())
        record, checksum = entry["record"], entry["sha256"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"unreadable ({type(error).__name__})"
    if stable_hash(record) != checksum:
        return "checksum mismatch (edited or damaged)"
    try:
        if record["model"] != name or record["params"]["total"] != network_params:
            return "it describes another model"
    except (KeyError, TypeError):
        return "incomplete record"
    return None


def read_entry(fingerprint: dict[str, Any], name: str, network_params: int) -> dict[str, Any] | None:
    """The cached count, or None when there is none or it cannot be used (the caller then counts)."""
    path = entry_path(fingerprint)
    if not path.is_file() or entry_problem(path, name, network_params) is not None:
        return None
    return json.loads(path.read_text())["record"]


def write_entry(fingerprint: dict[str, Any], record: dict[str, Any]) -> None:
    """Store a count with its checksum (atomically)."""
    atomic_write_bytes(entry_path(fingerprint), json.dumps({"record": record, "sha256": stable_hash(record)}).encode())
