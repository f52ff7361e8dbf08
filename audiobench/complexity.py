"""Model complexity: parameters, operator-level MACs, peak activation memory and latency (CPU or CUDA).

Conventions (see shared reference protocols.md §3 for how the original papers counted):

* MACs are counted for the **network only** (the log-mel front-end is not counted), batch 1, on the
  input shape the model's own front-end produces for a zero waveform of the clip length, in eval
  mode under ``torch.no_grad``. The counter is ``torch.utils.flop_counter.FlopCounterMode`` at the
  aten-operator level (convolutions, mm/bmm/addmm/baddbmm, scaled-dot-product attention), so
  functional calls such as DyMN's dynamic convolutions are counted too; MACs = FLOPs / 2. Element-wise
  operations, normalisation, activations and pooling are not counted (as in the EfficientAT counter).
* Peak activation memory is measured, not estimated: a ``TorchDispatchMode`` sees every tensor an aten
  operator returns, adds the bytes of each new storage when it first appears and subtracts them when
  the storage is freed (weak reference callback). Parameters, buffers and the input are excluded; views
  and in-place results share a storage and are counted once. Scratch memory inside a kernel is not seen.
* Both counts also work on the ``meta`` device (no weights, no arithmetic), which makes large models
  cheap to count: params and MACs are identical to CPU; the peak memory differs by < 0.1 % (on meta,
  eval-mode batch norm also returns its small per-channel statistics). Latency needs a real model.
* Latency is batch 1 on the model's device (CPU, or CUDA with a synchronisation around every run), capped
  by a time budget: at most ``runs`` and at least 3 timed runs; the record says how many were made.
"""

from __future__ import annotations

import math
import platform
import statistics
import time
import weakref
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from audiobench.models.base import AudioModel

COUNTER = "torch.utils.flop_counter.FlopCounterMode"


def _cpu_sdpa_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, out_shape: Any = None,
                    **kwargs: Any) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# The CPU fused attention kernel is missing from FlopCounterMode's registry; count it like the GPU ones.
_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops}


class PeakStorageTracker(TorchDispatchMode):
    """Tracks the bytes of live tensor storages created by aten operators, and their peak."""

    def __init__(self, ignore: list[torch.Tensor]) -> None:
        super().__init__()
        self._ignored = {self._key(t) for t in ignore}
        self._live: dict[int, tuple[int, weakref.ref]] = {}
        self.current = 0
        self.peak = 0

    @staticmethod
    def _key(tensor: torch.Tensor) -> int:
        return id(tensor.untyped_storage())

    def _freed(self, key: int) -> None:
        entry = self._live.pop(key, None)
        if entry is not None:
            self.current -= entry[0]

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key = id(storage)
            if key in self._ignored or key in self._live:
                continue
            size = storage.nbytes()
            self._live[key] = (size, weakref.ref(storage, lambda _ref, k=key: self._freed(k)))
            self.current += size
            self.peak = max(self.peak, self.current)
        return out


def cpu_name() -> str:
    """The CPU model name (``/proc/cpuinfo`` on Linux, else ``platform.processor()``)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


class _WholeModel(torch.nn.Module):
    """A model without a separate network input, counted as a whole: waveform -> clip embedding."""

    def __init__(self, model: AudioModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.model.embed(waveforms)


def _network_input(model: AudioModel, seconds: float) -> tuple[torch.Tensor, torch.nn.Module | None, torch.Tensor, bool]:
    """A zero waveform of ``seconds``, the module to count, its input, and whether the front-end is inside it."""
    wave = torch.zeros(1, int(round(seconds * model.sample_rate)), device=model.device)
    if model.network is None:  # e.g. logmel-stats: report the shape of its features, count nothing
        frontend = getattr(model, "frontend", None)
        return wave, None, frontend(wave).unsqueeze(1) if frontend is not None else wave, False
    network_input = model.network_input(wave)
    if network_input is None:
        return wave, _WholeModel(model), wave, True
    return wave, model.network, network_input, False


def count_macs(network: torch.nn.Module, mel: torch.Tensor) -> dict[str, Any]:
    """Operator-level MACs of one forward pass, in total, per aten operator and per top-level module."""
    counter = FlopCounterMode(depth=2, display=False, custom_mapping=_EXTRA_FORMULAS)
    with torch.no_grad(), counter:
        network(mel)
    counts = counter.get_flop_counts()
    root = type(network).__name__
    by_op = {str(op).replace("aten.", ""): flops // 2 for op, flops in counts.get("Global", {}).items()}
    by_module = {name[len(root) + 1:]: sum(ops.values()) // 2 for name, ops in counts.items()
                 if name.startswith(root + ".") and name.count(".") == 1}
    return {"total": counter.get_total_flops() // 2, "by_operator": dict(sorted(by_op.items())),
            "by_module": by_module}


def peak_activation_bytes(network: torch.nn.Module, mel: torch.Tensor) -> int:
    """Peak bytes of intermediate tensors alive during one forward pass (see the module docstring)."""
    ignore = [mel, *network.parameters(), *network.buffers()]
    tracker = PeakStorageTracker(ignore)
    with torch.no_grad(), tracker:
        out = network(mel)
    del out
    return tracker.peak


def _time_ms(fn: Callable[[], Any], runs: int, warmup: int, budget_s: float | None = None, min_runs: int = 3,
             sync: Callable[[], None] = lambda: None,
             on_run: Callable[[int], None] | None = None) -> dict[str, float]:
    """Median / p90 / min of up to ``runs`` timed calls of ``fn`` after up to ``warmup`` untimed ones.

    With ``budget_s`` the measurement stops once that many seconds are spent (warm-up included) and at
    least ``min(min_runs, runs)`` runs are timed; warm-up stops after a quarter of the budget (one run at
    least). ``sync`` waits for queued device work (CUDA) before each clock reading.
    """
    deadline = None if budget_s is None else time.perf_counter() + budget_s
    warmup_deadline = None if budget_s is None else time.perf_counter() + budget_s / 4
    done_warmup = 0
    while done_warmup < warmup and (done_warmup == 0 or warmup_deadline is None
                                    or time.perf_counter() < warmup_deadline):
        fn()
        sync()
        done_warmup += 1
    least = min(min_runs, runs)
    times: list[float] = []
    while len(times) < runs and (len(times) < least or deadline is None or time.perf_counter() < deadline):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1000.0)
        if on_run is not None:
            on_run(len(times))
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]
    return {"median_ms": statistics.median(times), "p90_ms": p90, "min_ms": ordered[0], "runs": len(times),
            "warmup_runs": done_warmup}


def time_latency(model: AudioModel, network: torch.nn.Module | None, wave: torch.Tensor, mel: torch.Tensor,
                 seconds: float, runs: int = 10, threads: int = 1, warmup: int = 3, budget_s: float | None = 10.0,
                 min_runs: int = 3, stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Batch-1 latency of the network and of front-end + network on the model's device (CPU or CUDA).

    Each of the two measurements gets half of ``budget_s`` (all of it without a network): at most
    ``runs`` and at least ``min(min_runs, runs)`` timed runs; the record says how many were made. On CUDA
    every run is synchronised. ``stage`` receives a progress line per run.
    """
    device = model.device
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"latency is measured on CPU or CUDA; the model is on {device.type}")
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    timings = [("network", lambda: network(mel))] if network is not None else []
    timings.append(("frontend_plus_network", lambda: model.embed(wave)))
    share = None if budget_s is None else budget_s / len(timings)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            result: dict[str, Any] = {"device": device.type, "cpu": cpu_name(), "threads": threads, "batch": 1,
                                      "requested_runs": runs, "budget_s": budget_s, "torch": torch.__version__,
                                      "network": None}
            if device.type == "cuda":
                result["gpu"] = torch.cuda.get_device_name(device)
            for key, fn in timings:
                label = key.replace("_", " ").replace("plus", "+")
                report = (lambda n, label=label: stage(f"latency ({label}): run {n}/{runs}")) if stage else None
                if stage:
                    stage(f"latency ({label}): warm-up")
                result[key] = _time_ms(fn, runs, warmup, share, min_runs, sync, report)
    finally:
        torch.set_num_threads(previous)
    measured = [result[key] for key, _ in timings]
    result["runs"] = min(m["runs"] for m in measured)  # the fewest runs behind any reported median
    result["warmup_runs"] = min(m["warmup_runs"] for m in measured)
    for row in measured:
        row["real_time_factor"] = row["median_ms"] / 1000.0 / seconds
    return result


def _relative(measured: float, published: float | None) -> float | None:
    return None if not published else (measured - published) / published


def published_complexity(model: AudioModel, params: int, macs: int) -> dict[str, Any] | None:
    """The card's published params/MACs (first AudioSet mAP record with them, else any record with them)."""
    numbers = [n for n in model.card.published if n.params_M is not None or n.macs_G is not None]
    numbers.sort(key=lambda n: not (n.task == "audioset" and n.metric == "mAP"))
    if not numbers:
        return None
    n = numbers[0]
    return {"params_M": n.params_M, "macs_G": n.macs_G, "record_id": n.record_id, "source": n.source,
            "params_rel_diff": _relative(params / 1e6, n.params_M),
            "macs_rel_diff": _relative(macs / 1e9, n.macs_G)}


def measure_complexity(model: AudioModel, seconds: float | None = None, latency_runs: int = 10,
                       threads: int = 1, measure_latency: bool = True, frames: int | None = None,
                       latency_budget_s: float | None = 10.0,
                       stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Complexity record of ``model`` (JSON-able); see the module docstring for the conventions.

    ``frames`` overrides the number of time frames of the network input (default: what the model's own
    front-end gives for ``seconds``), to reproduce counts made with another input convention. Latency is
    measured on the model's device within ``latency_budget_s`` seconds (see :func:`time_latency`).
    ``stage`` is called with a short description of each stage as it starts (for progress display).
    """
    stage = stage or (lambda text: None)
    card = model.card
    segment = card.config.get("segment_seconds")
    seconds = float(seconds if seconds is not None else (segment or 10.0))
    if seconds <= 0:
        raise ValueError(f"clip length must be positive, got {seconds} s")
    was_training = model.training
    model.eval()
    try:
        stage("preparing the input")
        with torch.no_grad():
            wave, network, mel, frontend_counted = _network_input(model, seconds)
        notes = []
        if frames is not None and not frontend_counted and frames != mel.shape[-1]:
            notes.append(f"network input overridden to {frames} time frames; the model's own front-end gives "
                         f"{mel.shape[-1]} for {seconds:g} s")
            mel = torch.zeros(*mel.shape[:-1], frames, dtype=mel.dtype, device=mel.device)
        record: dict[str, Any] = {
            "model": card.name, "family": card.family, "device": model.device.type,
            "input": {"seconds": seconds, "sample_rate": model.sample_rate, "num_samples": wave.shape[-1],
                      "shape": list(mel.shape), "dtype": str(mel.dtype).replace("torch.", ""), "batch": 1,
                      "frontend_counted": frontend_counted, "frontend": model.frontend_config(),
                      "note": ("the model has no separate network input: MACs, memory and latency are for the whole "
                               "model, front-end included" if frontend_counted else
                               "MACs, memory and the 'network' latency are for the network only; the front-end "
                               "(log-mel) is not counted")},
        }
        if segment and abs(seconds - segment) > 1e-9:
            notes.append(f"the model is trained on {segment} s segments; this counts one pass over the whole "
                         f"{seconds} s clip")
        if network is None:
            params = trainable = macs = 0
            record["params"] = {"total": 0, "trainable": 0, "M": 0.0}
            record["macs"] = {"total": 0, "G": 0.0, "by_operator": {}, "by_module": {},
                              "counter": COUNTER, "counter_version": torch.__version__}
            record["peak_activation_memory"] = None
            notes.append("no neural network: 0 parameters and 0 network MACs (the front-end is not counted)")
        else:
            params = sum(p.numel() for p in network.parameters())
            trainable = sum(p.numel() for p in network.parameters() if p.requires_grad)
            if frontend_counted:
                params = trainable = model.num_parameters()
            record["params"] = {"total": params, "trainable": trainable, "M": params / 1e6,
                                "note": "nn.Parameter elements of the network; BN running statistics excluded"}
            stage("counting MACs")
            counted = count_macs(network, mel)
            macs = counted["total"]
            record["macs"] = {"total": macs, "G": macs / 1e9, "M": macs / 1e6, "per_second": macs / seconds,
                              "counter": COUNTER, "counter_version": torch.__version__,
                              "counted_on": mel.device.type, "definition": "MACs = FLOPs / 2",
                              "by_operator": counted["by_operator"], "by_module": counted["by_module"]}
            stage("measuring peak activation memory")
            peak = peak_activation_bytes(network, mel)
            record["peak_activation_memory"] = {
                "bytes": peak, "MiB": peak / 2**20, "dtype": str(mel.dtype).replace("torch.", ""), "batch": 1,
                "input_bytes": mel.numel() * mel.element_size(),
                "method": "TorchDispatchMode over aten ops: sum of live output-tensor storages (freed via weakref "
                          "callbacks), peak over the forward pass; parameters, buffers and the input excluded",
            }
        record["params_trainable"] = trainable
        record["published"] = published_complexity(model, params, macs)
        budget = card.config.get("dcase23_budget")
        if budget:
            macs_per_second = macs / seconds
            record["budget"] = {**budget, "params": params, "macs_per_second": macs_per_second,
                                "params_within": params <= budget["max_params"],
                                "macs_within": macs_per_second <= budget["max_macs_per_second"],
                                "note": f"counted with {COUNTER}; DCASE23 used torchinfo mult-adds"}
        record["latency"] = (time_latency(model, network, wave, mel, seconds, latency_runs, threads,
                                          budget_s=latency_budget_s, stage=stage) if measure_latency else None)
        record["notes"] = notes
    finally:
        model.train(was_training)
    return record


def cached_complexity(model: AudioModel) -> dict[str, Any]:
    """``measure_complexity`` without latency for the model's standard input, cached on disk.

    The count is deterministic for a given model fingerprint (which includes the model's code version), the
    counting code and the torch version, so a repeated ``audiobench run`` reads it instead of counting again.
    An entry is used only when its checksum verifies and its model name and parameter count (cheap to
    recount) agree with the model; otherwise it is counted again, with a warning naming the file
    (:mod:`audiobench.complexity_cache`).
    """
    import warnings

    from audiobench.complexity_cache import entry_path, entry_problem, read_entry, write_entry
    from audiobench.errors import CacheWarning

    fingerprint = model.fingerprint()
    network = model.network
    params = sum(p.numel() for p in network.parameters()) if network is not None else 0
    path = entry_path(fingerprint)
    if path.is_file():
        problem = entry_problem(path, model.card.name, params)
        if problem is None:
            return read_entry(fingerprint, model.card.name, params)
        warnings.warn(f"Damaged complexity cache entry {path}: {problem}; counting again.", CacheWarning,
                      stacklevel=2)
        path.unlink(missing_ok=True)
    record = measure_complexity(model, measure_latency=False)
    write_entry(fingerprint, record)
    return record
