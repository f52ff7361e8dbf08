"""The user's audiobench cache directory (checkpoints, label files, datasets, embeddings)."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def cache_root() -> Path:
    """``$AUDIOBENCH_CACHE`` if set, else the platform's user cache dir (e.g. ``~/.cache/audiobench``)."""
    env = os.environ.get("AUDIOBENCH_CACHE")
    return Path(env).expanduser() if env else Path(user_cache_dir("audiobench"))


def cache_subdir(name: str) -> Path:
    """A sub-directory of the cache root (created on demand)."""
    path = cache_root() / name
    path.mkdir(parents=True, exist_ok=True)
    return path
