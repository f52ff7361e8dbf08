"""One thread budget for the whole process: decoding workers x their threads + compute threads <= cores.

Decoding workers and torch both default to every core, so on a small machine they fight over it (on two
cores, one decoding worker plus a two-thread network runs slower than one thread alone). The plan here
splits the cores once, from what the run has to do:

* nothing to decode (the audio or the embeddings are cached): no worker, every core computes;
* decoding on CPU: about a third of the cores decode (at least one), the rest run the network; on one or two
  cores decoding runs in turn with the network in the main process (measured faster than any split there);
* network on a GPU: the cores decode, one thread feeds the GPU.

``--threads`` (or ``$AUDIOBENCH_THREADS``) sets the number of cores to plan for; ``--num-workers`` fixes the
workers, and the compute threads get the rest.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

THREADS_ENV = "AUDIOBENCH_THREADS"
MAX_DECODE_WORKERS = 8
# Measured on 2 cores (160 ESC-50 clips, cold audio cache): decoding in-process with two compute threads beats one
# decoding worker + one compute thread (mn04 40 vs 36 clips/s, mn10 22 vs 16) and one worker + two threads
# (31 / 20: oversubscribed). Workers pay off once there are cores to spare for them.
IN_PROCESS_UP_TO_CORES = 2
DECODE_SHARE = 1 / 3  # measured on CPU: decode + resample of a 5 s clip ~ a third of an efficient CNN's forward


def available_cores() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup (container) CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, quota) if quota else cores)


def _cgroup_quota() -> int | None:
    """Whole CPUs allowed by a cgroup v2 ``cpu.max`` quota (None when unlimited or unknown)."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, int(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


@dataclass(frozen=True)
class ThreadPlan:
    """How the cores are used: ``workers`` decoding processes (one thread each) and ``compute_threads``."""

    cores: int
    workers: int
    compute_threads: int
    reason: str

    def describe(self) -> dict[str, Any]:
        """The plan, for the result record."""
        return asdict(self)


def budget_cores(threads: int | None = None) -> int:
    """The number of cores to plan for: ``threads``, else ``$AUDIOBENCH_THREADS``, else what is available."""
    if threads is None:
        value = os.environ.get(THREADS_ENV, "").strip()
        if value:
            try:
                threads = int(value)
            except ValueError:
                from audiobench.errors import AudiobenchError

                raise AudiobenchError(f"${THREADS_ENV}={value!r} is not a whole number.",
                                      hint=f"Set {THREADS_ENV} to a number of threads, e.g. 4, or unset it.") from None
    if threads is not None and threads < 1:
        from audiobench.errors import AudiobenchError

        raise AudiobenchError(f"A thread budget of {threads} is not possible.", hint="Give --threads 1 or more.")
    return threads if threads is not None else available_cores()


def plan_threads(device_type: str, clips_to_decode: int, threads: int | None = None,
                 workers: int | None = None) -> ThreadPlan:
    """Split the thread budget between decoding workers and compute threads (see the module docstring)."""
    cores = budget_cores(threads)
    if workers is not None:
        compute = 1 if device_type != "cpu" else max(1, cores - workers)  # an explicit choice may exceed the budget
        return ThreadPlan(cores, workers, compute, "workers fixed by --num-workers; compute threads get the rest")
    if clips_to_decode == 0:
        return ThreadPlan(cores, 0, cores, "nothing to decode: every core computes")
    if cores <= IN_PROCESS_UP_TO_CORES and device_type == "cpu" or cores == 1:
        return ThreadPlan(cores, 0, cores, f"{cores} core(s): decode in turn with the network, every core computes")
    if device_type != "cpu":
        return ThreadPlan(cores, min(MAX_DECODE_WORKERS, cores - 1), 1,
                          "network on an accelerator: the cores decode, one thread feeds it")
    decode = min(MAX_DECODE_WORKERS, max(1, round(cores * DECODE_SHARE)), max(1, clips_to_decode // 8))
    return ThreadPlan(cores, decode, cores - decode, "decoding on CPU: about a third of the cores decode")


def apply_compute_threads(plan: ThreadPlan) -> None:
    """Set torch's intra-op threads (and BLAS through threadpoolctl when loaded) to the plan's compute threads."""
    import torch

    if torch.get_num_threads() != plan.compute_threads:
        torch.set_num_threads(plan.compute_threads)


def worker_init(_: int) -> None:
    """DataLoader ``worker_init_fn``: a decoding worker uses one thread for everything."""
    import torch

    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass


@contextlib.contextmanager
def compute_budget(threads: int | None = None) -> Iterator[None]:
    """Cap BLAS/OpenMP pools (threadpoolctl) and torch, when loaded, at the thread budget for a block of work
    (e.g. training a probe), restoring them afterwards."""
    from threadpoolctl import threadpool_limits

    cores = budget_cores(threads)
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None and before > cores:
        torch.set_num_threads(cores)
    try:
        with threadpool_limits(limits=cores):
            yield
    finally:
        if torch is not None and before is not None:
            torch.set_num_threads(before)
