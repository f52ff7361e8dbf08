"""Compute clip embeddings in batches, once: cached entries are reused, missing ones computed.

Audio is decoded and resampled in DataLoader workers, which on CPU also run the model's weight-free
input stage (the log-mel front-end), while the main process runs the network; see
``benchmarks/embedding_throughput.py`` for the cost of each stage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from audiobench.audio import RESAMPLER_QUALITY, load_audio
from audiobench.cache import EmbeddingCache, file_digest, stable_hash
from audiobench.datasets.base import Clip
from audiobench.models.base import AudioModel

AUDIO_PIPELINE = {"decoder": "soundfile", "mono": "mean of channels", "resampler": f"soxr-{RESAMPLER_QUALITY}",
                  "length": "zero-pad or crop at the end"}


@dataclass
class EmbeddingStats:
    """How many embeddings were reused from the cache and how many were computed."""

    total: int
    reused: int
    computed: int


def default_num_workers() -> int:
    """Audio-decoding workers: one less than the CPU count, at most 4 (0 = decode in-process)."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


class ClipAudio(Dataset):
    """Waveforms of ``clips`` at the model's sample rate, padded/cropped to ``seconds``."""

    def __init__(self, clips: Sequence[Clip], sample_rate: int, seconds: float | None) -> None:
        self.clips, self.sample_rate, self.seconds = list(clips), sample_rate, seconds

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        waveform = load_audio(self.clips[index].path, self.sample_rate, self.seconds)
        return index, torch.from_numpy(waveform)


class StagedBatch:
    """DataLoader ``collate_fn`` that stacks waveforms and runs the model's input stage (in the worker)."""

    def __init__(self, stage: torch.nn.Module) -> None:
        self.stage = stage

    def __call__(self, items: list[tuple[int, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        positions, waveforms = default_collate(items)
        with torch.inference_mode():
            return positions, self.stage(waveforms)


def clip_key(path: Path, seconds: float | None) -> str:
    """Cache key of one clip: its audio bytes and the length the model sees."""
    return stable_hash({"audio": file_digest(path), "seconds": seconds})


def cache_for(model: AudioModel, root: Path) -> EmbeddingCache:
    """The embedding cache of ``model`` under ``root``."""
    return EmbeddingCache(root, {**model.fingerprint(), "audio_pipeline": AUDIO_PIPELINE})


def extract_embeddings(
    model: AudioModel,
    clips: Sequence[Clip],
    seconds: float | None,
    cache: EmbeddingCache | None = None,
    batch_size: int = 32,
    num_workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, EmbeddingStats]:
    """Embeddings ``[len(clips), D]`` in clip order, plus reuse statistics.

    Every finished batch is written to ``cache`` at once, so an interrupted extraction resumes.
    ``on_progress(n)`` is called with the number of clips done since the last call.
    """
    keys = [clip_key(c.path, seconds) for c in clips]
    result: list[np.ndarray | None] = [cache.get(k) if cache is not None else None for k in keys]
    todo = [i for i, e in enumerate(result) if e is None]
    if on_progress is not None and len(clips) > len(todo):
        on_progress(len(clips) - len(todo))
    if todo:
        workers = default_num_workers() if num_workers is None else num_workers
        device = model.device
        # On CPU with workers, the (weight-free) input stage runs in the workers, beside the network.
        stage = model.input_stage() if workers > 0 and device.type == "cpu" else None
        loader = DataLoader(
            ClipAudio([clips[i] for i in todo], model.sample_rate, seconds),
            batch_size=batch_size if seconds is not None else 1,
            num_workers=workers,
            collate_fn=StagedBatch(stage) if stage is not None else None,
        )
        embed = model.embed_inputs if stage is not None else model.embed
        with torch.inference_mode():
            for positions, inputs in loader:
                embeddings = embed(inputs.to(device)).float().cpu().numpy()
                for position, embedding in zip(positions.tolist(), embeddings):
                    index = todo[position]
                    result[index] = embedding
                    if cache is not None:
                        cache.put(keys[index], embedding)
                if on_progress is not None:
                    on_progress(len(positions))
    stats = EmbeddingStats(total=len(clips), reused=len(clips) - len(todo), computed=len(todo))
    return np.stack(result) if result else np.zeros((0, model.embedding_dim), np.float32), stats
