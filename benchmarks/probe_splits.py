"""The linear probe's cost and accuracy to its optimum, per solver, and splits fitted in turn or in threads.

The figures behind ``audiobench/protocols/probe.py``: scikit-learn's default (L-BFGS, tol 1e-4, float32 as
given) against the probe's Newton-CG (tol 1e-8, float64), both timed on the same K-fold splits, and how far
each one's test probabilities are from the optimum (Newton-CG to 1e-10); then the probe's split loop with
one thread against the thread budget. Features are the cached embeddings of a run (``--features X.npy``
with ``--labels y.npy``) or, by default, ESC-50-sized blobs (414 clips, 384 dims, 50 classes). Variants
alternate within each repeat so drift hits all alike.

    python benchmarks/probe_splits.py --folds 5 --repeats 3
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from audiobench.datasets.base import Clip, DatasetIndex
from audiobench.protocols.evaluate import evaluate_probe
from audiobench.protocols.probe import LinearProbe
from audiobench.protocols.splits import cross_validation
from audiobench.threads import available_cores


def blobs(clips: int, dim: int, classes: int, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, dim))
    labels = np.arange(clips) % classes
    return (centres[labels] + rng.normal(0, spread, (clips, dim))).astype(np.float32), labels


def fitted(solver: str, tol: float, dtype: type, x: np.ndarray, y: np.ndarray, test: np.ndarray) -> np.ndarray:
    head = LogisticRegression(solver=solver, tol=tol, max_iter=10_000)
    return make_pipeline(StandardScaler(), head).fit(x.astype(dtype), y).predict_proba(test.astype(dtype))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=Path, default=None, help="embeddings [N, D] (.npy)")
    parser.add_argument("--labels", type=Path, default=None, help="class indices [N] (.npy)")
    parser.add_argument("--clips", type=int, default=414)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--classes", type=int, default=50)
    parser.add_argument("--spread", type=float, default=4.0, help="blob noise (4: about 0.5 accuracy)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # the early-stopped solver's convergence notes
    if args.features is not None:
        x, y = np.load(args.features).astype(np.float32), np.load(args.labels)
    else:
        x, y = blobs(args.clips, args.dim, args.classes, args.spread)
    clips = [Clip(clip_id=str(i), path=Path(f"{i}.wav"), label=int(label)) for i, label in enumerate(y)]
    index = DatasetIndex(name="bench", classes=[str(c) for c in sorted(set(y.tolist()))], clips=clips)
    plan = cross_validation(index, args.folds, seed=0)
    print(f"{platform.machine()} {platform.processor() or ''}; {available_cores()} cores; {len(y)} clips x "
          f"{x.shape[1]} dims, {len(index.classes)} classes, {args.folds} folds, median of {args.repeats}")

    solvers = {"scikit-learn default (lbfgs, 1e-4, float32)": ("lbfgs", 1e-4, np.float32),
               "audiobench (newton-cg, 1e-8, float64)": ("newton-cg", 1e-8, np.float64)}
    seconds: dict[str, list[float]] = {name: [] for name in solvers}
    distance = {name: 0.0 for name in solvers}
    with threadpool_limits(1, user_api="blas"):
        optimum = [fitted("newton-cg", 1e-10, np.float64, x[s.train], y[s.train], x[s.test]) for s in plan.splits]
        for _ in range(args.repeats):
            for name, (solver, tol, dtype) in solvers.items():
                started = time.perf_counter()
                scores = [fitted(solver, tol, dtype, x[s.train], y[s.train], x[s.test]) for s in plan.splits]
                seconds[name].append(time.perf_counter() - started)
                distance[name] = max(float(np.abs(a - b).max()) for a, b in zip(scores, optimum))
    for name in solvers:
        print(f"  {name}: {np.median(seconds[name]):.3f} s for {args.folds} fits, "
              f"max |p - optimum| {distance[name]:.1e}")

    loop: dict[int, list[float]] = {1: [], available_cores(): []}
    for _ in range(args.repeats):
        for threads in loop:
            started = time.perf_counter()
            evaluate_probe(LinearProbe(), x, index, plan, threads=threads)
            loop[threads].append(time.perf_counter() - started)
    one, many = np.median(loop[1]), np.median(loop[available_cores()])
    print(f"  probe split loop: {one:.3f} s with 1 thread, {many:.3f} s with {available_cores()} "
          f"(x{one / many:.2f})")


if __name__ == "__main__":
    main()
