"""How many clips one forward pass takes: on CPU, loader batches are split into chunks that fit the cache.

Measured with ``benchmarks/forward_chunks.py`` on a 2-core x86 CPU, 2 threads: clips/s of the bare network
(front-end + network) against the forward batch size:

* mn04, 5 s clips: batch 4-8 about 250, batch 16 about 180, batch 32 about 150;
* mn10, 5 s: batch 4 about 118, batch 32 about 60; 10 s: batch 2-3 about 57, batch 32 about 25;
* dymn10, 5 s: batch 4 about 51, batch 32 about 35; PaSST-S, 10 s: batch 1 fastest;
* mn04, 1 s: batch 32 fastest.

The best chunk holds about 24 clip-seconds of 32 kHz audio whatever the clip length: past that the
activations fall out of the CPU's caches. Outputs agree whatever the chunking up to float rounding (tested
within 1e-6 relative; mostly bitwise), as they already did for different batch sizes, so the cache keys do not
depend on it. On CUDA the whole loader batch is one forward pass.
"""

from __future__ import annotations

import os
from typing import Callable

import torch

CPU_FORWARD_SAMPLES_ENV = "AUDIOBENCH_CPU_FORWARD_SAMPLES"
DEFAULT_CPU_FORWARD_SAMPLES = 768_000  # about 24 s of 32 kHz audio per forward pass on CPU


def cpu_forward_samples() -> int:
    """Input samples per CPU forward pass (``$AUDIOBENCH_CPU_FORWARD_SAMPLES`` overrides the default)."""
    value = os.environ.get(CPU_FORWARD_SAMPLES_ENV)
    return max(1, int(value)) if value else DEFAULT_CPU_FORWARD_SAMPLES


def forward_chunk(device: torch.device, batch_size: int, clip_samples: int | None) -> int:
    """Clips per forward pass: the whole batch on an accelerator, else as many as fit the CPU budget."""
    if device.type != "cpu" or not clip_samples or clip_samples <= 0:
        return batch_size
    return max(1, min(batch_size, cpu_forward_samples() // clip_samples))


def forward_in_chunks(forward: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor,
                      chunk: int) -> torch.Tensor:
    """``forward(inputs)``, computed ``chunk`` clips at a time and concatenated."""
    if len(inputs) <= chunk:
        return forward(inputs)
    return torch.cat([forward(part) for part in inputs.split(chunk)])
