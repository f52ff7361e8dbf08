"""Bare-network throughput (front-end + network, clips/s) against the forward batch size, in one run.

The figures behind ``audiobench/forward_chunks.py``: on CPU the best forward pass holds a few tens of
clip-seconds, whatever the loader's batch size. Sizes alternate within each repeat so drift hits all alike.

    python benchmarks/forward_chunks.py --model mn10 --seconds 5 --sizes 1,2,4,8,16,32 --clips 64
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

import audiobench
from audiobench.forward_chunks import forward_chunk
from audiobench.threads import available_cores


def clips_per_second(model, waveforms: torch.Tensor, size: int) -> float:
    with torch.inference_mode():
        model.embed(waveforms[:size])  # warm-up at this size
        started = time.perf_counter()
        for start in range(0, len(waveforms), size):
            model.embed(waveforms[start:start + size])
    return len(waveforms) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mn10")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--sizes", default="1,2,4,8,16,32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    model = audiobench.load_model(args.model).to(args.device)
    torch.set_num_threads(available_cores())
    samples = int(round(args.seconds * model.sample_rate))
    waveforms = (0.1 * torch.randn(args.clips, samples, generator=torch.Generator().manual_seed(0))).to(args.device)
    sizes = [int(size) for size in args.sizes.split(",")]
    figures: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(args.repeats):
        for size in sizes:
            figures[size].append(clips_per_second(model, waveforms, size))
    print(f"{platform.processor() or platform.machine()}, {available_cores()} cores, torch {torch.__version__}; "
          f"{args.model} on {args.device}, {args.clips} clips of {args.seconds:g} s, median of {args.repeats}")
    chosen = forward_chunk(torch.device(args.device), max(sizes), samples)
    for size in sizes:
        mark = "  <- audiobench's chunk" if size == chosen else ""
        print(f"  forward batch {size:3d}: {np.median(figures[size]):8.1f} clips/s{mark}")
    if chosen not in figures:
        print(f"  (audiobench's chunk for these clips: {chosen})")


if __name__ == "__main__":
    main()
