"""What decides the waveform a model sees, as cache keys: the input pipeline and each clip's identity.

Torch-free, so a run whose embeddings are all cached can find that out without importing torch.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Sequence

from audiobench.cache import stable_hash
from audiobench.code_version import implementation_version

RESAMPLER_QUALITY = "HQ"  # soxr quality of audiobench.audio.resample; part of the embedding cache key

#: Modules whose code decides the waveform a model sees and how embeddings are batched.
PIPELINE_MODULES = ("audiobench.audio", "audiobench.audio_cache", "audiobench.clip_batches", "audiobench.embeddings")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


@lru_cache(maxsize=None)
def input_pipeline(sample_rate: int) -> dict[str, Any]:
    """Everything between an audio file and the model's input, for the embedding cache key.

    The clip length is part of each clip's key (:func:`clip_key`); library versions are included because
    a new decoder or resampler can change the samples.
    """
    import numpy as np
    import soundfile as sf

    return {
        "sample_rate": sample_rate, "decoder": f"soundfile {sf.__version__} / {sf.__libsndfile_version__}",
        "mono": "mean of channels", "resampler": f"soxr {_version('soxr')} quality {RESAMPLER_QUALITY}",
        "crop": "keep the start", "pad": "zeros at the end", "torch": _version("torch"), "numpy": np.__version__,
        "implementation": implementation_version(PIPELINE_MODULES),
    }


#: Modules whose code decides the decoded, resampled samples the audio cache stores.
AUDIO_MODULES = ("audiobench.audio", "audiobench.audio_cache")


def audio_identity(sample_rate: int) -> dict[str, Any]:
    """What decides the samples the audio cache holds: the input pipeline without the batching code and torch
    (an edit to how batches are formed, or a new torch, must not throw the decoded audio away)."""
    identity = {key: value for key, value in input_pipeline(sample_rate).items() if key != "torch"}
    return {**identity, "implementation": implementation_version(AUDIO_MODULES)}


def clip_key(path: Path, seconds: float | None, digest: str | None = None) -> str:
    """Cache key of one clip: its audio bytes (``digest``, else read now) and the length the model sees."""
    if digest is None:
        from audiobench.content_id import content_digest

        digest = content_digest(Path(path))
    return stable_hash({"audio": digest, "seconds": seconds})


def clip_digests(paths: Sequence[Path]) -> list[str]:
    """Content digests of audio files, read again only for files whose size, times or inode changed."""
    from audiobench.content_id import default_content_index

    return default_content_index().digests([Path(p) for p in paths])


def clip_keys(paths: Sequence[Path], seconds: float | None) -> tuple[list[str], list[str]]:
    """(clip keys, content digests) of ``paths`` at crop length ``seconds``."""
    digests = clip_digests(paths)
    return [stable_hash({"audio": digest, "seconds": seconds}) for digest in digests], digests
