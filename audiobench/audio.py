"""Audio input: decode with soundfile, downmix to mono, resample with soxr, pad or crop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audiobench.errors import AudioFileError

RESAMPLER_QUALITY = "HQ"  # soxr quality; part of the embedding cache key


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode ``path`` to a mono float32 array and its sample rate.

    A missing, empty, corrupt or unreadable file raises :class:`AudioFileError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"Audio file {path} does not exist.", hint="Check the path and the dataset layout.")
    if path.stat().st_size == 0:
        raise AudioFileError(f"Audio file {path} is empty (0 bytes).", hint="Replace it with a complete copy.")
    try:
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as error:
        raise AudioFileError(f"Audio file {path} cannot be decoded ({error}).",
                             hint="The file is corrupt or not in a format libsndfile reads (wav, flac, ogg, ...); "
                                  "replace it with a complete copy.") from error
    if data.shape[0] == 0:
        raise AudioFileError(f"Audio file {path} contains no samples.", hint="Replace it with a complete copy.")
    if not np.isfinite(data).all():
        raise AudioFileError(f"Audio file {path} contains NaN or infinite samples.",
                             hint="Replace it with a valid copy.")
    return data.mean(axis=1), int(sample_rate)


def resample(signal: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample a mono signal with soxr (no-op when the rates match)."""
    if source_rate == target_rate:
        return signal
    return soxr.resample(signal, source_rate, target_rate, quality=RESAMPLER_QUALITY).astype(np.float32, copy=False)


def fit_length(signal: np.ndarray, num_samples: int) -> np.ndarray:
    """Zero-pad at the end or crop the end so the signal has exactly ``num_samples`` samples."""
    if len(signal) >= num_samples:
        return signal[:num_samples]
    return np.pad(signal, (0, num_samples - len(signal)))


def load_audio(path: str | Path, sample_rate: int, seconds: float | None = None) -> np.ndarray:
    """Mono float32 waveform of ``path`` at ``sample_rate``; padded/cropped to ``seconds`` if given."""
    signal, source_rate = read_audio(path)
    signal = resample(signal, source_rate, sample_rate)
    if seconds is not None:
        signal = fit_length(signal, int(round(seconds * sample_rate)))
    return np.ascontiguousarray(signal, dtype=np.float32)
