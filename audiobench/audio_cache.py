"""Decoded, resampled, cropped audio stored once per clip and shared by every model at that sample rate.

One :class:`~audiobench.shards.ShardStore` per (sample rate, crop ``seconds``, input pipeline), in
``<root>/<sha256 of those, 24 hex>/`` with ``store.json`` recording them. Entries are keyed by the clip's
content digest (:mod:`audiobench.content_id`), so a renamed or copied clip is not decoded again and an
edited one is. Waveforms are stored as float32 bytes and read back bit for bit as
:func:`audiobench.audio.load_audio` returned them; every read is verified (crc32), a damaged entry is
dropped and decoded again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from audiobench.audio import load_audio
from audiobench.cache import stable_hash
from audiobench.cachedir import cache_subdir
from audiobench.content_id import ContentIndex, content_digest
from audiobench.shards import STORE_FORMAT, ShardStore

AUDIO_CACHE_FORMAT = "audio-cache-1 (float32 mono waveform per content digest)"


class AudioCache:
    """Waveforms at ``sample_rate``, padded/cropped to ``seconds`` (None: whole clips), by content digest.

    ``pipeline`` describes whatever else decides the samples (decoder/resampler versions, ...); it is
    only hashed into the store's location. ``content_index`` (default: the user's) supplies digests in
    :meth:`load` when the caller gives none.
    """

    def __init__(self, root: Path, sample_rate: int, seconds: float | None, pipeline: dict[str, Any],
                 content_index: ContentIndex | None = None, max_shard_bytes: int = 1 << 30) -> None:
        self.sample_rate = int(sample_rate)
        self.seconds = None if seconds is None else float(seconds)  # 10 and 10.0 share a store
        self.pipeline, self.content_index = pipeline, content_index
        self.description = {"format": AUDIO_CACHE_FORMAT, "store": STORE_FORMAT, "sample_rate": self.sample_rate,
                            "seconds": self.seconds, "pipeline": pipeline}
        self.store = ShardStore(Path(root) / stable_hash(self.description)[:24], max_shard_bytes=max_shard_bytes)
        self.store.describe(self.description)
        self._num_samples = None if self.seconds is None else int(round(self.seconds * self.sample_rate))

    def get(self, digest: str) -> np.ndarray | None:
        """The cached waveform of the clip with content ``digest`` (float32, 1-D, read-only), or None."""
        return self.get_many([digest])[0]

    def get_many(self, digests: Sequence[str]) -> list[np.ndarray | None]:
        """Cached waveforms in the order of ``digests``; None for clips not (or no longer) cached."""
        return [waveform if waveform is None or self._fits(waveform) else None
                for waveform in self.store.get_many(digests)]

    def _fits(self, waveform: np.ndarray) -> bool:
        """An entry of the wrong kind is ignored (and replaced by the next put), never handed to a model."""
        return (waveform.dtype == np.float32 and waveform.ndim == 1
                and (self._num_samples is None or waveform.shape[0] == self._num_samples))

    def put(self, digest: str, waveform: np.ndarray) -> None:
        """Cache the waveform of the clip with content ``digest`` (float32, 1-D, as load_audio returns)."""
        if waveform.dtype != np.float32 or waveform.ndim != 1:
            raise ValueError(f"audio cache holds 1-D float32 waveforms, got {waveform.ndim}-D {waveform.dtype}")
        if self._num_samples is not None and waveform.shape[0] != self._num_samples:
            raise ValueError(f"waveform of {waveform.shape[0]} samples, the cache holds {self._num_samples}")
        self.store.put(digest, waveform)

    def missing(self, digests: Sequence[str]) -> list[int]:
        """Positions in ``digests`` of the clips not cached (reads no audio)."""
        return self.store.missing(digests)

    def take_damaged(self) -> list[tuple[str, str]]:
        """Damaged entries met since the last call (digest, reason); they are decoded again when loaded."""
        return self.store.take_damaged()

    def load(self, path: str | Path, digest: str | None = None) -> np.ndarray:
        """The waveform of ``path``: from the cache, else decoded with load_audio, cached and returned.

        ``digest`` is the file's content digest when the caller knows it. Cached waveforms are read-only
        views; freshly decoded ones are the array load_audio returned.
        """
        if digest is None:
            digest = content_digest(path, self.content_index)
        cached = self.get(digest)
        if cached is not None:
            return cached
        waveform = load_audio(path, self.sample_rate, self.seconds)
        self.put(digest, waveform)
        return waveform

    def close(self) -> None:
        """Close this process's files and connection (a later use reopens them)."""
        self.store.close()


def default_audio_cache(sample_rate: int, seconds: float | None, pipeline: dict[str, Any]) -> AudioCache:
    """The user's audio cache (``audio/`` under the audiobench cache) for these settings."""
    return AudioCache(cache_subdir("audio"), sample_rate, seconds, pipeline)
