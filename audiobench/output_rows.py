"""Where a run's per-clip outputs go: an array in memory, or an on-disk feature matrix past the memory budget.

A task whose outputs ``[N, D]`` float32 exceed the run's memory budget (AudioSet: 2 M clips x 960 values =
7.7 GB) gets a :class:`~audiobench.feature_matrix.FeatureMatrix` under the cache (``features/``), written
row by row as outputs are read from the cache or computed, so memory holds one batch at a time; streaming
probes then read it in chunks.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from audiobench.cache import stable_hash
from audiobench.cachedir import cache_subdir
from audiobench.feature_matrix import FeatureMatrix

DEFAULT_MEMORY_BUDGET_MB = 4096.0


def fits_in_memory(count: int, dim: int, budget_mb: float | None) -> bool:
    """Whether ``count`` x ``dim`` float32 outputs stay within ``budget_mb`` (None: no budget)."""
    return budget_mb is None or count * dim * 4 <= budget_mb * 1e6


class OutputRows:
    """Rows ``[count, dim]`` filled in any order, in memory or in a feature matrix (see the module docstring)."""

    def __init__(self, count: int, dim: int, matrix: FeatureMatrix | None = None) -> None:
        self.count, self.dim, self.matrix = count, dim, matrix
        self.array = np.zeros((count, dim), np.float32) if matrix is None else None

    @classmethod
    def for_run(cls, count: int, dim: int, budget_mb: float | None, identity: dict) -> "OutputRows":
        """In memory when the outputs fit the budget, else a fresh feature matrix named by ``identity``."""
        if fits_in_memory(count, dim, budget_mb):
            return cls(count, dim)
        directory = cache_subdir("features") / stable_hash(identity)[:24]
        shutil.rmtree(directory, ignore_errors=True)  # a matrix left by an interrupted run is written again
        return cls(count, dim, FeatureMatrix.create(directory, count, dim))

    def put(self, index: int, row: np.ndarray) -> None:
        if self.array is not None:
            self.array[index] = row
        else:
            self.matrix.write_rows(index, np.asarray(row, np.float32)[None])

    def result(self) -> np.ndarray | FeatureMatrix:
        """The filled rows: the array, or the finalised (read-only, checksummed) feature matrix."""
        if self.matrix is None:
            return self.array
        self.matrix.finalize()
        return self.matrix

    @property
    def on_disk(self) -> Path | None:
        return self.matrix.directory if self.matrix is not None else None
