"""Locate the project's data directories (task cards, published numbers) in a checkout or a wheel.

In a source checkout (or editable install) they are the top-level ``tasks/`` and ``leaderboards/``
directories; a built wheel carries copies inside the package as ``_builtin_tasks/`` and
``_builtin_leaderboards/`` (see ``pyproject.toml``).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT_DIR = PACKAGE_DIR.parent


def data_dir(name: str) -> Path:
    """The directory ``name`` ("tasks" or "leaderboards") of this installation."""
    for candidate in (CHECKOUT_DIR / name, PACKAGE_DIR / f"_builtin_{name}"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"audiobench data directory {name!r} not found next to {PACKAGE_DIR}")


def published_numbers_file() -> Path:
    """The curated published-numbers file (``leaderboards/published.yaml``)."""
    return data_dir("leaderboards") / "published.yaml"
