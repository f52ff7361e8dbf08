"""Outputs past the memory budget stay on disk (a feature matrix) and the linear probe streams them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audiobench.errors import ProtocolError
from audiobench.feature_matrix import FeatureMatrix
from audiobench.output_rows import OutputRows, fits_in_memory
from audiobench.runner import RunOptions, run


def test_rows_stay_in_memory_within_the_budget_and_go_to_disk_past_it() -> None:
    assert fits_in_memory(100, 10, 1.0) and not fits_in_memory(1000, 1000, 1.0) and fits_in_memory(10**9, 10, None)
    small = OutputRows.for_run(3, 2, 1.0, {"x": 1})
    big = OutputRows.for_run(3, 2, 1e-9, {"x": 1})
    for rows in (small, big):
        rows.put(2, np.array([5, 6], np.float32))
        rows.put(0, np.array([1, 2], np.float32))
    assert isinstance(small.result(), np.ndarray) and small.on_disk is None
    matrix = big.result()
    assert isinstance(matrix, FeatureMatrix) and big.on_disk is not None
    assert np.array_equal(matrix[:], small.result())
    matrix.verify()


def test_run_over_the_budget_streams_and_agrees_with_the_in_memory_run(tmp_path: Path) -> None:
    in_memory, _ = run(RunOptions(task="synthetic", model="logmel-stats", output_dir=tmp_path / "a", device="cpu"))
    on_disk, _ = run(RunOptions(task="synthetic", model="logmel-stats", output_dir=tmp_path / "b", device="cpu",
                                memory_budget_mb=0.01))
    assert in_memory["protocol"]["name"] == "linear-probe"
    assert on_disk["protocol"]["name"] == "linear-probe-streaming"
    assert on_disk["embeddings"]["store"].startswith("on-disk feature matrix 120 x")
    assert "store" not in in_memory["embeddings"]
    assert in_memory["probe_outputs"]["computed"] > 0 and "probe_outputs" not in on_disk  # streamed: not cached
    from audiobench.cachedir import cache_subdir

    assert list(cache_subdir("features").iterdir()) == []  # the run's matrix is gone once its record is written
    assert abs(on_disk["metrics"]["accuracy"]["mean"] - in_memory["metrics"]["accuracy"]["mean"]) <= 0.02


def test_a_probe_that_needs_memory_is_refused_past_the_budget(tmp_path: Path) -> None:
    with pytest.raises(ProtocolError, match="memory budget"):
        run(RunOptions(task="synthetic", model="logmel-stats", output_dir=tmp_path, device="cpu",
                       protocol="mlp-probe", memory_budget_mb=0.01))
