"""The split loop of a probe protocol: train on each split's training clips, score its test clips."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from audiobench.datasets.base import DatasetIndex
from audiobench.feature_matrix import FeatureMatrix, row_view
from audiobench.predictions import Predictions
from audiobench.protocols.split_cache import SplitCache, split_key
from audiobench.protocols.splits import SplitPlan


def evaluate_probe(probe: Any, features: np.ndarray | FeatureMatrix, index: DatasetIndex, plan: SplitPlan,
                   advance: Callable[[int], None] = lambda n: None, threads: int | None = None,
                   cache: SplitCache | None = None) -> Predictions:
    """Predictions for the test clips of every split of ``plan`` (the training split's labels only are seen).

    Probes that select on validation data (``uses_validation``) get the split's validation clips, or, for
    fold plans without them, the next fold's clips (taken out of the training clips), as the HEAR kit does.
    Probes that declare ``streaming = True`` get lazy :class:`~audiobench.feature_matrix.RowView` s of the
    rows instead of in-memory copies (``features`` may then live on disk as a ``FeatureMatrix``).
    Probes whose ``parallel_splits`` allows it have up to ``threads`` (the thread budget) splits fitted at
    once, one BLAS thread each, by ``probe.for_split()`` copies whose state ``probe.merge_splits`` takes
    back in split order; the predictions and the record are those of one split after the other.
    With a ``cache``, probes that declare ``split_identity()`` (and ``split_state()`` / ``restore_split()``)
    take a split's outputs from it when everything that determines them is unchanged
    (:mod:`audiobench.protocols.split_cache`), and store those they fit.
    """
    targets, masks, groups = index.targets(), index.masks(), index.groups()
    rows_of: Callable[[np.ndarray], Any] = (
        (lambda rows: row_view(features, rows)) if getattr(probe, "streaming", False) else features.__getitem__)
    jobs = []
    for number, split in enumerate(plan.splits):
        train, valid = split.train, split.valid
        if getattr(probe, "uses_validation", False) and valid is None and len(plan.splits) > 1:
            # HEAR k-fold convention: the next fold validates, the remaining folds train
            valid = np.intersect1d(plan.splits[(number + 1) % len(plan.splits)].test, train)
            train = np.setdiff1d(train, valid)
        jobs.append((split, train, valid))

    workers = _split_workers(probe, features, targets, jobs, threads)
    cached = cache is not None and _cacheable(probe)
    implementation = _protocol_code(probe) if cached else None  # once, before any thread starts
    copies = workers > 1 or (cached and hasattr(probe, "for_split"))
    fitters = [probe.for_split() for _ in jobs] if copies else [probe] * len(jobs)

    def fit(number: int) -> np.ndarray:
        split, train, valid = jobs[number]
        inputs: dict[str, Any] = {"x_train": rows_of(train), "y_train": targets[train], "x_test": rows_of(split.test)}
        extra: dict[str, Any] = {} if masks is None else {"mask": masks[train]}
        if getattr(probe, "uses_validation", False) and valid is not None and len(valid):
            extra.update(x_valid=rows_of(valid), y_valid=targets[valid])
            if masks is not None:
                extra["mask_valid"] = masks[valid]
        # a probe without for_split fits the splits in turn, so its identity may hold what earlier splits chose
        key = None if implementation is None else split_key(
            {**fitters[number].split_identity(), "num_classes": len(index.classes), "implementation": implementation},
            {**inputs, **extra})
        if key is not None:
            entry = cache.get(key, len(split.test), len(index.classes))
            if entry is not None:
                try:
                    fitters[number].restore_split(entry[1])  # checks the state before taking any of it
                except (KeyError, TypeError, ValueError) as error:
                    cache.discard(key, f"the probe cannot take its state back ({error})")
                else:
                    cache.reuse()
                    return entry[0]
        scores = fitters[number].fit_predict(inputs["x_train"], inputs["y_train"], inputs["x_test"],
                                             num_classes=len(index.classes), **extra)[1]
        if key is not None:
            cache.put(key, scores, fitters[number].split_state())
        return scores

    tested, names, scores = [], [], []
    with _one_blas_thread(workers > 1), ThreadPoolExecutor(workers) if workers > 1 else _Inline() as pool:
        for (split, _, _), split_scores in zip(jobs, pool.map(fit, range(len(jobs)))):  # in split order
            tested.append(split.test)
            names += [split.name] * len(split.test)
            scores.append(split_scores)
            advance(1)
    if copies:
        probe.merge_splits(fitters)
    rows = np.concatenate(tested) if tested else np.zeros(0, dtype=int)
    return Predictions(clip_id=[index.clips[i].clip_id for i in rows], split=names, target=targets[rows],
                       scores=np.concatenate(scores) if scores else np.zeros((0, len(index.classes)), np.float32),
                       classes=index.classes, mask=None if masks is None else masks[rows],
                       group=None if groups is None else groups[rows])


def _cacheable(probe: Any) -> bool:
    """Whether ``probe``'s split outputs may be cached: it declares its identity and per-split state, and
    fits in-memory rows (streaming probes read features that may live on disk and are not hashed)."""
    return (all(hasattr(probe, name) for name in ("split_identity", "split_state", "restore_split"))
            and not getattr(probe, "streaming", False))


def _protocol_code(probe: Any) -> str | None:
    """The derived version of the probe's protocol code, part of every split's cache key with the probe's
    ``split_identity()``, the number of classes and the split's arrays (None: not a registered protocol, so
    its outputs are not cached)."""
    from audiobench.code_version import protocol_version

    return protocol_version(str(probe.split_identity()["name"]))


def _split_workers(probe: Any, features: Any, targets: np.ndarray, jobs: list, threads: int | None) -> int:
    """Threads fitting splits at once: 1 unless the probe allows it for in-memory features of this size."""
    allows = getattr(probe, "parallel_splits", None)
    if allows is None or len(jobs) < 2 or not isinstance(features, np.ndarray):
        return 1
    largest = max(len(train) for _, train, _ in jobs) * int(np.prod(features.shape[1:]))
    if not allows(largest, targets.ndim == 2):
        return 1
    from audiobench.threads import budget_cores

    return min(budget_cores(threads), len(jobs))


class _Inline:
    """A stand-in for a one-thread pool: ``map`` runs in the calling thread."""

    def __enter__(self) -> "_Inline":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    @staticmethod
    def map(function: Callable, items: list) -> Any:
        return map(function, items)


def _one_blas_thread(active: bool) -> Any:
    """BLAS pools at one thread while splits are fitted in parallel threads (no oversubscription)."""
    if not active:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")
