"""Shared test fixtures.

Every test runs with ``AUDIOBENCH_CACHE`` pointing at its own temporary directory, so no test ever
reads or writes the user's real cache (checkpoints, datasets, embeddings).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared_material import SHARED  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ``AUDIOBENCH_CACHE`` at a fresh temporary directory for every test."""
    cache = tmp_path_factory.mktemp("audiobench-cache")
    monkeypatch.setenv("AUDIOBENCH_CACHE", str(cache))
    return cache


@pytest.fixture
def shared_dir() -> Path:
    """The read-only ``shared/`` reference material (skips the test when it is not there)."""
    if not SHARED.is_dir():
        pytest.skip(f"shared reference material not found at {SHARED}")
    return SHARED

