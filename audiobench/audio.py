"""Audio input: decode with soundfile, downmix to mono, resample with soxr, pad or crop."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audiobench.errors import AudioFileError
from audiobench.input_pipeline import RESAMPLER_QUALITY

RESAMPLE_MARGIN_SECONDS = 0.1  # source audio decoded past a crop's end so soxr's filter sees real samples there
_BLOCK_FRAMES = 65536  # block size of the read when a format does not report its length


def read_audio(path: str | Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode ``path`` to a mono float32 array and its sample rate.

    With ``max_seconds``, only the first ``ceil(max_seconds * rate)`` frames are decoded, so memory is
    bounded by that length and not by the file's. A missing, empty, corrupt or unreadable file raises
    :class:`AudioFileError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"Audio file {path} does not exist.", hint="Check the path and the dataset layout.")
    if path.stat().st_size == 0:
        raise AudioFileError(f"Audio file {path} is empty (0 bytes).", hint="Replace it with a complete copy.")
    _check_not_truncated(path)
    try:
        data, sample_rate = _decode(path, max_seconds)
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


def _decode(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Frames ``[n, channels]`` (float32) from the start of ``path``, at most ``max_seconds`` of them."""
    with sf.SoundFile(str(path)) as handle:
        rate = handle.samplerate
        if max_seconds is None:
            return handle.read(dtype="float32", always_2d=True), rate
        wanted = max(int(math.ceil(max_seconds * rate)), 1)
        if handle.frames > 0:  # the length is known: one read of the frames needed (fewer at the end of the file)
            return handle.read(frames=min(wanted, handle.frames), dtype="float32", always_2d=True), rate
        return _read_blocks(handle, wanted), rate  # length unknown (some streams): read blocks until enough


def _read_blocks(handle: sf.SoundFile, wanted: int) -> np.ndarray:
    """Up to ``wanted`` frames read block by block, stopping at the end of the stream."""
    blocks, count = [], 0
    while count < wanted:
        block = handle.read(frames=min(_BLOCK_FRAMES, wanted - count), dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            break
        blocks.append(block)
        count += block.shape[0]
    if not blocks:
        return np.zeros((0, handle.channels), dtype=np.float32)
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]


_W64_RIFF = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # placeholders of streaming writers (size not known when the header was written)
_MAX_CHUNKS = 256  # chunks walked before giving up looking for the data chunk


def _data_chunk(path: Path, file_size: int) -> tuple[int, int, int] | None:
    """(declared data bytes, data offset, bytes per frame or 0) of a WAV/RF64/W64 file; None when unknown.

    Reads only the chunk headers before the samples (a few small reads), so it is cheap for every clip.
    """
    with open(path, "rb") as handle:
        head = handle.read(40)
        if len(head) < 12:
            return None
        if head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64") and head[8:12] == b"WAVE":
            endian = ">" if head[:4] == b"RIFX" else "<"
            return _walk_riff(handle, endian, file_size, head[:4] in (b"RF64", b"BW64"))
        if len(head) >= 40 and head[:16] == _W64_RIFF:
            return _walk_w64(handle, file_size)
    return None


def _walk_riff(handle, endian: str, file_size: int, rf64: bool) -> tuple[int, int, int] | None:
    offset, frame_bytes, ds64_data = 12, 0, None
    for _ in range(_MAX_CHUNKS):
        handle.seek(offset)
        header = handle.read(8)
        if len(header) < 8:
            return None
        chunk_id, size = header[:4], struct.unpack(endian + "I", header[4:])[0]
        if chunk_id == b"ds64" and rf64:
            body = handle.read(16)
            if len(body) == 16:
                ds64_data = struct.unpack("<Q", body[8:16])[0]
        elif chunk_id == b"fmt ":
            body = handle.read(14)
            if len(body) == 14:
                frame_bytes = struct.unpack(endian + "H", body[12:14])[0]
        elif chunk_id == b"data":
            if rf64 and size == 0xFFFFFFFF:
                size = ds64_data if ds64_data else 0
            elif size in _UNKNOWN_SIZES:
                return None
            return size, offset + 8, frame_bytes
        offset += 8 + size + (size & 1)  # chunks are padded to an even size
        if offset >= file_size:
            return None
    return None


def _walk_w64(handle, file_size: int) -> tuple[int, int, int] | None:
    offset, frame_bytes = 40, 0  # riff GUID, 64-bit size, wave GUID
    for _ in range(_MAX_CHUNKS):
        handle.seek(offset)
        header = handle.read(24)
        if len(header) < 24:
            return None
        chunk_id, size = header[:4], struct.unpack("<Q", header[16:24])[0]  # size includes the 24-byte header
        if size < 24:
            return None
        if chunk_id == b"fmt ":
            body = handle.read(14)
            if len(body) == 14:
                frame_bytes = struct.unpack("<H", body[12:14])[0]
        elif chunk_id == b"data":
            return size - 24, offset + 24, frame_bytes
        offset += (size + 7) & ~7  # chunks are aligned to 8 bytes
        if offset >= file_size:
            return None
    return None


def _check_not_truncated(path: Path) -> None:
    """Raise :class:`AudioFileError` when a WAV/RF64/W64 file ends before the end its data chunk declares.

    libsndfile decodes such a file silently to the samples present (e.g. an interrupted copy).
    """
    file_size = path.stat().st_size
    try:
        found = _data_chunk(path, file_size)
    except OSError:
        return  # the decoder reports unreadable files
    if found is None:
        return
    declared, start, frame_bytes = found
    present = max(file_size - start, 0)
    if present >= declared:
        return
    unit = frame_bytes if frame_bytes > 0 else 1
    what = "samples" if frame_bytes > 0 else "bytes of samples"
    raise AudioFileError(f"Audio file {path} is truncated: header says {declared // unit} {what}, "
                         f"file holds {present // unit}.",
                         hint="The file was cut short (e.g. an interrupted download or copy); "
                              "replace it with a complete copy.")


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
    """Mono float32 waveform of ``path`` at ``sample_rate``; padded/cropped to ``seconds`` if given.

    With ``seconds``, only the start of the file is decoded: ``seconds`` plus :data:`RESAMPLE_MARGIN_SECONDS`,
    so the resampled crop equals the crop of the whole file resampled (up to float rounding near the
    crop's end). Memory per clip is bounded by the crop, not by the file; NaN/infinite samples are only
    looked for in the decoded part.
    """
    max_seconds = None if seconds is None else seconds + RESAMPLE_MARGIN_SECONDS
    signal, source_rate = read_audio(path, max_seconds)
    signal = resample(signal, source_rate, sample_rate)
    if seconds is not None:
        signal = fit_length(signal, int(round(seconds * sample_rate)))
    return np.ascontiguousarray(signal, dtype=np.float32)
