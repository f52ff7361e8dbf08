"""Batches of model inputs for a list of clips, prepared at the speed of the network.

Waveforms come from the audio cache (memory-mapped, decoded once per clip and sample rate) or are decoded
and resampled in DataLoader workers, which then store them in the audio cache. Where the model's input
stage (its weight-free front-end) runs depends on the device:

* CPU with decoding workers: in the workers, beside the network (the two stages overlap);
* CPU without workers (everything cached): in the main process, with every core;
* GPU: on the GPU; waveforms travel in pinned memory with non-blocking copies, batches prepared ahead.

The number of workers and of compute threads comes from one thread plan (:mod:`audiobench.threads`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from audiobench.audio import load_audio
from audiobench.audio_cache import AudioCache
from audiobench.datasets.base import Clip
from audiobench.errors import AudiobenchError, AudioFileError
from audiobench.threads import ThreadPlan, worker_init

PREFETCH_BATCHES = 4  # batches each worker prepares ahead


@dataclass(frozen=True)
class ClipFailure:
    """An audio file that could not be loaded in a worker (picklable, so it crosses processes intact)."""

    path: str
    message: str
    hint: str | None


class ClipAudio(Dataset):
    """Waveforms of ``clips`` at ``sample_rate``, padded/cropped to ``seconds``, from ``audio_cache`` when given.

    ``digests`` are the clips' content digests (the audio cache's keys). An unreadable file yields a
    :class:`ClipFailure` instead of raising, so the main process can name the file rather than show a
    worker traceback.
    """

    def __init__(self, clips: Sequence[Clip], sample_rate: int, seconds: float | None,
                 audio_cache: AudioCache | None = None, digests: Sequence[str] | None = None) -> None:
        self.clips, self.sample_rate, self.seconds = list(clips), sample_rate, seconds
        self.audio_cache, self.digests = audio_cache, list(digests) if digests is not None else None

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | ClipFailure]:
        path = self.clips[index].path
        try:
            if self.audio_cache is not None and self.digests is not None:
                waveform = self.audio_cache.load(path, self.digests[index])
            else:
                waveform = load_audio(path, self.sample_rate, self.seconds)
        except AudiobenchError as error:
            return index, ClipFailure(str(path), str(error), error.hint)
        return index, waveform  # may be a read-only view into the audio cache: the batch stacking copies it


class StagedBatch:
    """DataLoader ``collate_fn``: stacks waveforms and runs the model's input stage (``stage``) if given.

    Returns ``(positions, inputs, failures)``; with failures, ``inputs`` is None.
    """

    def __init__(self, stage: torch.nn.Module | None) -> None:
        self.stage = stage

    def __call__(self, items: list[tuple[int, Any]]) -> tuple[torch.Tensor, torch.Tensor | None, list[ClipFailure]]:
        failures = [item for _, item in items if isinstance(item, ClipFailure)]
        positions = torch.tensor([index for index, _ in items])
        if failures:
            return positions, None, failures
        waveforms = torch.from_numpy(np.stack([waveform for _, waveform in items]))
        if self.stage is None:
            return positions, waveforms, []
        with torch.inference_mode():
            return positions, self.stage(waveforms), []


def _raise_failure(failure: ClipFailure, clip: Clip) -> None:
    hint = (f"{failure.hint + ' ' if failure.hint else ''}Or remove {Path(failure.path).name} from the dataset "
            f"folder: the run then lists it as missing (and is not official).")
    raise AudioFileError(f"Clip {clip.clip_id!r}: {failure.message}", hint=hint)


def check_batch(failures: list[ClipFailure], batch: list[Clip]) -> None:
    """Raise the first audio failure of a decoded batch as a clear error naming its clip."""
    if failures:
        first = failures[0]
        _raise_failure(first, next(clip for clip in batch if str(clip.path) == first.path))


@dataclass
class ClipBatches:
    """Iterates ``(positions, inputs on the model's device, staged)`` over ``clips``.

    ``staged`` tells whether ``inputs`` already went through the model's input stage (then the caller uses
    ``embed_inputs``/``head_inputs``), or are waveforms.
    """

    clips: Sequence[Clip]
    sample_rate: int
    seconds: float | None
    device: torch.device
    plan: ThreadPlan
    batch_size: int = 32
    stage: torch.nn.Module | None = None
    audio_cache: AudioCache | None = None
    digests: Sequence[str] | None = None

    def __iter__(self) -> Iterator[tuple[list[int], torch.Tensor, bool]]:
        on_cpu = self.device.type == "cpu"
        staged = self.stage is not None and on_cpu and self.plan.workers > 0
        workers = self.plan.workers
        loader = DataLoader(
            ClipAudio(self.clips, self.sample_rate, self.seconds, self.audio_cache, self.digests),
            batch_size=self.batch_size if self.seconds is not None else 1,
            num_workers=workers,
            collate_fn=StagedBatch(self.stage if staged else None),
            pin_memory=not on_cpu,
            worker_init_fn=worker_init if workers else None,
            prefetch_factor=PREFETCH_BATCHES if workers else None,
            persistent_workers=False,
        )
        for positions, inputs, failures in loader:
            batch_positions = positions.tolist()
            check_batch(failures, [self.clips[p] for p in batch_positions])
            yield batch_positions, inputs.to(self.device, non_blocking=not on_cpu), staged
