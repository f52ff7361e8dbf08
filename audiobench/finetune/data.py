"""Training and scoring batches of waveforms for fine-tuning, decoded once (the shared audio cache).

Clips are read with :class:`audiobench.clip_batches.ClipAudio` (the audio cache when it is on, else decoded in
DataLoader workers and stored into it), so every epoch after the first reads memory-mapped waveforms. Batches
are ``(positions, waveforms [B, N])``; ``positions`` index the dataset's clip list, so targets, masks, groups
and teacher logits are looked up in arrays held by the trainer. The order of training clips is drawn from a
generator seeded with ``(seed, split, epoch)``: an epoch's batches do not depend on what ran before, so a
resumed run sees the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from audiobench.clip_batches import ClipAudio, StagedBatch, check_batch
from audiobench.datasets.base import Clip, DatasetIndex
from audiobench.threads import ThreadPlan, worker_init


def derived_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (numpy SeedSequence): independent streams per (seed, split, epoch)."""
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31 | int(state[1])) & ((1 << 63) - 1)


@dataclass
class ClipTargets:
    """Per-clip training targets in dataset order: ``soft`` ``[N, C]`` float32 (one-hot or multi-hot),
    the known-label ``mask`` ``[N, C]`` (None: all known) and the clip ``groups`` (e.g. devices) or None."""

    soft: np.ndarray
    mask: np.ndarray | None
    groups: np.ndarray | None

    @classmethod
    def of(cls, index: DatasetIndex) -> "ClipTargets":
        targets = index.targets()
        if targets.ndim == 1:
            soft = np.zeros((len(targets), len(index.classes)), dtype=np.float32)
            soft[np.arange(len(targets)), targets] = 1.0
        else:
            soft = targets.astype(np.float32)
        return cls(soft, index.masks(), index.groups())


class RowOrder(Sampler[int]):
    """Training clips of one epoch: a permutation of ``rows`` (repeated or cut to ``samples``), or
    ``samples`` draws weighted by ``weights`` without replacement (class-balanced sampling)."""

    def __init__(self, rows: Sequence[int], seed: int, samples: int | None = None,
                 weights: np.ndarray | None = None) -> None:
        self.rows = np.asarray(rows, dtype=np.int64)
        self.seed, self.weights = seed, weights
        self.samples = int(samples) if samples else len(self.rows)

    def __len__(self) -> int:
        return self.samples

    def __iter__(self) -> Iterator[int]:
        if self.weights is not None:
            from audiobench.finetune.sampling import ClassBalancedSampler

            picks = np.array(list(ClassBalancedSampler(self.weights, self.samples, seed=self.seed)), dtype=np.int64)
        else:
            generator = torch.Generator().manual_seed(self.seed)
            rounds = -(-self.samples // max(len(self.rows), 1))
            order = [torch.randperm(len(self.rows), generator=generator) for _ in range(rounds)]
            picks = torch.cat(order)[: self.samples].numpy()
        return iter(self.rows[picks].tolist())


class WaveformSource:
    """Waveforms of ``clips`` at ``sample_rate`` cut/padded to ``seconds``, as DataLoaders over chosen rows."""

    def __init__(self, clips: Sequence[Clip], sample_rate: int, seconds: float, plan: ThreadPlan,
                 audio_cache: Any = None, digests: Sequence[str] | None = None, pin_memory: bool = False) -> None:
        self.dataset = ClipAudio(clips, sample_rate, seconds, audio_cache, digests)
        self.clips, self.plan, self.pin_memory = list(clips), plan, pin_memory

    def _loader(self, sampler: Sampler[int] | Sequence[int], batch_size: int, seed: int) -> DataLoader:
        workers = self.plan.workers
        return DataLoader(self.dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                          collate_fn=StagedBatch(None), pin_memory=self.pin_memory,
                          worker_init_fn=worker_init if workers else None,
                          generator=torch.Generator().manual_seed(seed),  # never the global generator
                          persistent_workers=False)

    def batches(self, sampler: Sampler[int] | Sequence[int], batch_size: int,
                seed: int = 0) -> Iterator[tuple[list[int], torch.Tensor]]:
        """``(positions, waveforms)`` batches in the sampler's order; unreadable clips raise AudioFileError."""
        for positions, waveforms, failures in self._loader(sampler, batch_size, seed):
            rows = positions.tolist()
            check_batch(failures, [self.clips[row] for row in rows])
            yield rows, waveforms

    def training(self, rows: Sequence[int], batch_size: int, seed: int, samples: int | None = None,
                 weights: np.ndarray | None = None) -> Iterator[tuple[list[int], torch.Tensor]]:
        """One epoch of training batches over ``rows`` in the order drawn from ``seed``."""
        return self.batches(RowOrder(rows, seed, samples, weights), batch_size, seed)

    def ordered(self, rows: Sequence[int], batch_size: int) -> Iterator[tuple[list[int], torch.Tensor]]:
        """Batches of ``rows`` in their order (scoring)."""
        return self.batches([int(r) for r in rows], batch_size)
