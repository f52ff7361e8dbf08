"""Cell formatting shared by the leaderboard writers (Markdown and HTML)."""

from __future__ import annotations

from typing import Any

import pandas as pd


def fmt(value: Any, digits: int = 4) -> str:
    """A number with ``digits`` decimals, or an en dash when missing."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    return f"{value:.{digits}f}"


def quantity(value: Any) -> str:
    """A size (params in M, MACs in G): 3 decimals, 2 significant digits below 0.01, an en dash when missing."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "–"
    if value == 0:
        return "0"
    return f"{value:.2g}" if abs(value) < 0.01 else f"{value:.3f}"


def score_text(row: dict[str, Any]) -> str:
    """``mean ± std`` with the number of splits and the ddof of the std."""
    if row["std"] is None or pd.isna(row["std"]):
        return fmt(row["mean"])
    return f"{fmt(row['mean'])} ± {fmt(row['std'])} (n={row['n_splits']}, ddof {row['std_ddof']})"


def macs_text(row: dict[str, Any]) -> str:
    """MACs in G with the input length they were counted for."""
    if row["macs_G"] is None or pd.isna(row["macs_G"]):
        return "–"
    seconds = row["macs_seconds"]
    text = quantity(row["macs_G"])
    return f"{text} ({seconds:g} s)" if seconds is not None and not pd.isna(seconds) else text


def difference_text(value: Any) -> str:
    """A signed difference, or an en dash."""
    return "–" if value is None or pd.isna(value) else f"{value:+.4f}"


def short_commit(row: dict[str, Any]) -> str:
    """The first 10 characters of the commit (``+dirty`` when the tree had changes), or ``unknown``."""
    if not row["commit"]:
        return "unknown"
    return row["commit"][:10] + ("+dirty" if row["dirty"] else "")


def code_note(row: dict[str, Any]) -> str:
    """A warning when today's model or protocol code is not the code that made the record (empty otherwise)."""
    changed = row.get("code_changed")
    if not isinstance(changed, list) or not changed:
        return ""
    return f"{' and '.join(changed)} code changed since this record (re-run it)"
