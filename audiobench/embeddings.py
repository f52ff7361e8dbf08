"""Compute clip embeddings in batches, once: cached entries are reused, missing ones computed.

Audio is decoded and resampled in DataLoader workers, which on CPU also run the model's weight-free
input stage (the log-mel front-end), while the main process runs the network; see
``benchmarks/embedding_throughput.py`` for the cost of each stage.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import soundfile as sf
import soxr
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from audiobench.audio import RESAMPLER_QUALITY, load_audio
from audiobench.cache import EmbeddingCache, file_digest, stable_hash
from audiobench.code_version import implementation_version
from audiobench.datasets.base import Clip
from audiobench.errors import AudiobenchError, AudioFileError, CacheWarning
from audiobench.models.base import AudioModel

#: Modules whose code decides the waveform a model sees and how embeddings are batched.
PIPELINE_MODULES = ("audiobench.audio", "audiobench.embeddings")


@lru_cache(maxsize=None)
def input_pipeline(sample_rate: int) -> dict[str, Any]:
    """Everything between an audio file and the model's input, for the embedding cache key.

    The clip length is part of each clip's key (:func:`clip_key`); library versions are included because
    a new decoder or resampler can change the samples.
    """
    return {
        "sample_rate": sample_rate, "decoder": f"soundfile {sf.__version__} / {sf.__libsndfile_version__}",
        "mono": "mean of channels", "resampler": f"soxr {soxr.__version__} quality {RESAMPLER_QUALITY}",
        "crop": "keep the start", "pad": "zeros at the end", "torch": torch.__version__, "numpy": np.__version__,
        "implementation": implementation_version(PIPELINE_MODULES),
    }


@dataclass
class EmbeddingStats:
    """How many embeddings were reused from the cache and how many were computed."""

    total: int
    reused: int
    computed: int


def default_num_workers() -> int:
    """Audio-decoding workers: one less than the CPU count, at most 4 (0 = decode in-process)."""
    return max(0, min(4, (os.cpu_count() or 1) - 1))


@dataclass(frozen=True)
class ClipFailure:
    """An audio file that could not be loaded in a worker (picklable, so it crosses processes intact)."""

    path: str
    message: str
    hint: str | None


class ClipAudio(Dataset):
    """Waveforms of ``clips`` at the model's sample rate, padded/cropped to ``seconds``.

    An unreadable file yields a :class:`ClipFailure` instead of raising, so the main process can report
    the file and the reason rather than a DataLoader worker traceback.
    """

    def __init__(self, clips: Sequence[Clip], sample_rate: int, seconds: float | None) -> None:
        self.clips, self.sample_rate, self.seconds = list(clips), sample_rate, seconds

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | ClipFailure]:
        path = self.clips[index].path
        try:
            waveform = load_audio(path, self.sample_rate, self.seconds)
        except AudiobenchError as error:
            return index, ClipFailure(str(path), str(error), error.hint)
        return index, torch.from_numpy(waveform)


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
        waveforms = default_collate([waveform for _, waveform in items])
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


def check_finite(model: AudioModel, clip: Clip, values: np.ndarray) -> None:
    """Refuse a model output with NaN or infinite values (nothing is cached for that clip)."""
    if not np.isfinite(values).all():
        raise AudiobenchError(f"Model {model.card.name!r} produced NaN or infinite values for clip "
                              f"{clip.clip_id!r} ({clip.path}).",
                              hint="Check the clip (silence, clipping) and the checkpoint; nothing was cached for it.")


def clip_key(path: Path, seconds: float | None) -> str:
    """Cache key of one clip: its audio bytes and the length the model sees."""
    return stable_hash({"audio": file_digest(path), "seconds": seconds})


@dataclass(frozen=True)
class ModelOutput:
    """What is extracted per clip: the clip embedding, or the pretrained head's probabilities."""

    name: str
    from_waveforms: Callable[[AudioModel], Callable[[torch.Tensor], torch.Tensor]]
    from_inputs: Callable[[AudioModel], Callable[[torch.Tensor], torch.Tensor]]
    size: Callable[[AudioModel], int]


OUTPUTS: dict[str, ModelOutput] = {
    "embedding": ModelOutput("embedding", lambda m: m.embed, lambda m: m.embed_inputs, lambda m: m.embedding_dim),
    "head": ModelOutput("head", lambda m: m.probabilities, lambda m: m.head_inputs, lambda m: m.card.num_classes or 0),
}


def cache_for(model: AudioModel, root: Path, output: str = "embedding") -> EmbeddingCache:
    """The embedding cache of ``model`` under ``root``: keyed by the model's fingerprint (weights, config,
    front-end, code version), the input pipeline and the output kind; every entry must be a vector of the
    output's size."""
    extra = {} if output == "embedding" else {"output": output}
    return EmbeddingCache(root, {**model.fingerprint(), "input": input_pipeline(model.sample_rate), **extra},
                          shape=(OUTPUTS[output].size(model),))


def _warn_damaged(cache: EmbeddingCache, show: int = 5) -> None:
    damaged = cache.take_damaged()
    for path, reason in damaged[:show]:
        warnings.warn(f"Damaged embedding cache entry {path}: {reason}; recomputing it.", CacheWarning, stacklevel=3)
    if len(damaged) > show:
        warnings.warn(f"{len(damaged) - show} more damaged embedding cache entries under {cache.directory} are "
                      f"being recomputed.", CacheWarning, stacklevel=3)


def extract_embeddings(
    model: AudioModel,
    clips: Sequence[Clip],
    seconds: float | None,
    cache: EmbeddingCache | None = None,
    batch_size: int = 32,
    num_workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    output: str = "embedding",
) -> tuple[np.ndarray, EmbeddingStats]:
    """Embeddings ``[len(clips), D]`` in clip order, plus reuse statistics.

    Every finished batch is written to ``cache`` at once, so an interrupted extraction resumes.
    ``on_progress(n)`` is called with the number of clips done since the last call. ``output="head"``
    extracts the pretrained head's probabilities ``[len(clips), num_classes]`` instead (see :data:`OUTPUTS`).
    """
    keys = [clip_key(c.path, seconds) for c in clips]
    result: list[np.ndarray | None] = [cache.get(k) if cache is not None else None for k in keys]
    if cache is not None:
        _warn_damaged(cache)
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
            collate_fn=StagedBatch(stage),
        )
        kind = OUTPUTS[output]
        embed = kind.from_inputs(model) if stage is not None else kind.from_waveforms(model)
        with torch.inference_mode():
            for positions, inputs, failures in loader:
                check_batch(failures, [clips[todo[p]] for p in positions.tolist()])
                embeddings = embed(inputs.to(device)).float().cpu().numpy()
                for position, embedding in zip(positions.tolist(), embeddings):
                    index = todo[position]
                    check_finite(model, clips[index], embedding)
                    result[index] = embedding
                    if cache is not None:
                        cache.put(keys[index], embedding)
                if on_progress is not None:
                    on_progress(len(positions))
    stats = EmbeddingStats(total=len(clips), reused=len(clips) - len(todo), computed=len(todo))
    return np.stack(result) if result else np.zeros((0, OUTPUTS[output].size(model)), np.float32), stats
