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


@pytest.mark.parametrize("source_rate, target_rate, channels", [
    (44100, 32000, 1), (16000, 32000, 2), (48000, 16000, 1), (32000, 32000, 1)])
def test_crop_decodes_the_start_only_and_matches_resampling_the_whole_file(
        tmp_path, source_rate, target_rate, channels) -> None:
    rng = np.random.default_rng(1)
    signal = (rng.standard_normal((source_rate * 10, channels)) * 0.1).astype(np.float32)
    path = tmp_path / "long.wav"
    sf.write(path, signal, source_rate, subtype="FLOAT")
    whole, rate = read_audio(path)
    expected = resample(whole, rate, target_rate)[: int(round(3.7 * target_rate))]
    cropped = load_audio(path, target_rate, seconds=3.7)
    assert cropped.shape == expected.shape
    # the decoded margin past the crop end keeps soxr's filter on real samples: equal up to float rounding
    np.testing.assert_allclose(cropped, expected, atol=1e-6, rtol=0)
    part, part_rate = read_audio(path, max_seconds=1.5)
    assert part_rate == source_rate and len(part) == int(np.ceil(1.5 * source_rate))
    np.testing.assert_array_equal(part, whole[: len(part)])


def test_file_shorter_than_the_crop_is_padded(tmp_path) -> None:
    path = tmp_path / "short.wav"
    sf.write(path, _sine(500, 22050, 0.8), 22050, subtype="FLOAT")
    whole = load_audio(path, 32000)
    padded = load_audio(path, 32000, seconds=2.0)
    assert padded.shape == (64000,)
    np.testing.assert_array_equal(padded[: len(whole)], whole)
    assert not padded[len(whole):].any()


def test_blockwise_read_stops_at_the_frames_needed(tmp_path, monkeypatch) -> None:
    from audiobench import audio

    path = tmp_path / "blocks.wav"
    signal = _sine(300, 8000, 1.0)
    sf.write(path, signal, 8000, subtype="FLOAT")
    monkeypatch.setattr(audio, "_BLOCK_FRAMES", 1000)
    with sf.SoundFile(str(path)) as handle:
        part = audio._read_blocks(handle, 2500)
        assert handle.tell() == 2500
    np.testing.assert_array_equal(part[:, 0], signal[:2500])
    with sf.SoundFile(str(path)) as handle:
        assert audio._read_blocks(handle, 10 ** 6).shape == (8000, 1)  # stops at the end of the stream


def test_cropping_a_30_minute_file_keeps_memory_bounded_by_the_crop(tmp_path) -> None:
    import tracemalloc

    rate, minutes = 8000, 30
    path = tmp_path / "long-recording.wav"
    block = np.zeros(rate * 60, dtype=np.int16)
    block[::rate] = 1000  # sparse clicks so the file is not all zeros
    with sf.SoundFile(str(path), "w", samplerate=rate, channels=1, subtype="PCM_16") as handle:
        for _ in range(minutes):
            handle.write(block)
    crop_bytes = 5 * 32000 * 4  # the 5 s float32 crop at 32 kHz
    tracemalloc.start()
    try:
        cropped = load_audio(path, 32000, seconds=5.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert cropped.shape == (5 * 32000,) and cropped.any()
    whole_file_bytes = minutes * 60 * rate * 4  # float32 decode of the whole file alone: 57.6 MB
    assert peak < 4 * crop_bytes, f"peak {peak} bytes for a {crop_bytes}-byte crop"
    assert peak < whole_file_bytes / 20
