"""Audio input: decoding, downmix, resampling, pad/crop and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audiobench.audio import fit_length, load_audio, read_audio, resample
from audiobench.errors import AudioFileError


def _sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_frequency(signal: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("suffix, subtype", [(".wav", "PCM_16"), (".wav", "FLOAT"), (".flac", "PCM_16")])
def test_decode_mono_wav_and_flac(tmp_path, suffix, subtype) -> None:
    signal = _sine(440, 16000, 0.25)
    path = tmp_path / f"clip{suffix}"
    sf.write(path, signal, 16000, subtype=subtype)
    decoded, rate = read_audio(path)
    assert rate == 16000
    assert decoded.dtype == np.float32 and decoded.ndim == 1 and len(decoded) == len(signal)
    np.testing.assert_allclose(decoded, signal, atol=1e-4)  # 16-bit quantisation at most


def test_stereo_is_downmixed_to_the_mean(tmp_path) -> None:
    left, right = _sine(440, 8000, 0.2, 0.6), _sine(1000, 8000, 0.2, 0.2)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    decoded, rate = read_audio(path)
    assert rate == 8000 and decoded.shape == left.shape
    np.testing.assert_allclose(decoded, (left + right) / 2, atol=1e-6)


def test_resample_44k1_to_32k_length_and_frequency() -> None:
    signal = _sine(1000, 44100, 1.0)
    out = resample(signal, 44100, 32000)
    assert out.dtype == np.float32
    assert abs(len(out) - 32000) <= 1
    assert abs(_peak_frequency(out, 32000) - 1000) <= 2.0  # 1 Hz bins
    assert abs(np.abs(out[1000:-1000]).max() - 0.5) < 0.01  # amplitude kept away from the edges


def test_resample_same_rate_is_identity() -> None:
    signal = _sine(300, 16000, 0.1)
    assert resample(signal, 16000, 16000) is signal


def test_load_audio_resamples_and_fits_length(tmp_path) -> None:
    path = tmp_path / "clip.wav"
    sf.write(path, _sine(2000, 44100, 0.5), 44100, subtype="PCM_16")
    padded = load_audio(path, 32000, seconds=1.0)
    assert padded.shape == (32000,) and padded.dtype == np.float32 and padded.flags["C_CONTIGUOUS"]
    assert np.all(padded[16100:] == 0)  # zero padding at the end
    assert abs(_peak_frequency(padded[:16000], 32000) - 2000) <= 4.0
    cropped = load_audio(path, 32000, seconds=0.25)
    assert cropped.shape == (8000,)
    np.testing.assert_array_equal(cropped, padded[:8000])
    whole = load_audio(path, 32000)
    assert abs(len(whole) - 16000) <= 1


def test_fit_length_pads_and_crops_at_the_end() -> None:
    x = np.arange(1, 6, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(x, 3), [1, 2, 3])
    np.testing.assert_array_equal(fit_length(x, 7), [1, 2, 3, 4, 5, 0, 0])
    np.testing.assert_array_equal(fit_length(x, 5), x)


def test_missing_file(tmp_path) -> None:
    path = tmp_path / "nowhere-1234.wav"
    with pytest.raises(AudioFileError, match="nowhere-1234.wav") as info:
        read_audio(path)
    assert info.value.hint


def test_empty_file(tmp_path) -> None:
    path = tmp_path / "empty-clip.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty-clip.wav"):
        read_audio(path)


def test_corrupt_file(tmp_path) -> None:
    path = tmp_path / "random-bytes.wav"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioFileError, match="random-bytes.wav") as info:
        load_audio(path, 32000)
    assert info.value.hint


@pytest.mark.parametrize("name, keep", [
    ("cut-header", lambda size: 30),
    ("header-only", lambda size: 44),  # the canonical 44-byte header, no samples
    ("truncated", lambda size: size // 2),  # e.g. an interrupted copy: the header says 16000 frames
], ids=["cut-inside-the-header", "header-only", "cut-inside-the-data"])
def test_cut_wav_is_refused_naming_the_file(tmp_path, name, keep) -> None:
    good = tmp_path / "good.wav"
    sf.write(good, _sine(440, 16000, 1.0), 16000, subtype="PCM_16")
    data = good.read_bytes()
    path = tmp_path / f"{name}.wav"
    path.write_bytes(data[: keep(len(data))])
    with pytest.raises(AudioFileError, match=f"{name}.wav"):
        read_audio(path)
