"""AudioCache: bit-exact waveforms, decoded once, re-decoded when the file or an entry changes."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import audiobench.audio_cache as audio_cache
from audiobench.audio import load_audio
from audiobench.audio_cache import AudioCache, default_audio_cache
from audiobench.cache import file_digest
from audiobench.content_id import ContentIndex

PIPELINE = {"decoder": "soundfile test", "resampler": "soxr HQ"}


def _wav(path: Path, seed: int, seconds: float = 0.5, rate: int = 22050) -> Path:
    noise = np.random.default_rng(seed).uniform(-0.5, 0.5, (int(seconds * rate), 2))
    sf.write(path, noise, rate, subtype="PCM_16")
    return path


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Paths decoded by the audio cache (the real load_audio still runs)."""
    calls: list[Path] = []

    def counting(path, sample_rate, seconds=None):
        calls.append(Path(path))
        return load_audio(path, sample_rate, seconds)

    monkeypatch.setattr(audio_cache, "load_audio", counting)
    return calls


def _cache(tmp_path: Path, rate: int = 16000, seconds: float | None = 0.3) -> AudioCache:
    return AudioCache(tmp_path / "audio", rate, seconds, PIPELINE, content_index=ContentIndex(tmp_path / "ids.sqlite"))


@pytest.mark.parametrize("seconds", [0.3, None])
def test_cached_waveform_is_bitwise_load_audio(tmp_path: Path, decodes: list[Path], seconds: float | None) -> None:
    clip = _wav(tmp_path / "a.wav", seed=1)
    expected = load_audio(clip, 16000, seconds)
    first = _cache(tmp_path, seconds=seconds).load(clip)
    again = _cache(tmp_path, seconds=seconds).load(clip)  # a new process would see the same
    assert len(decodes) == 1
    for waveform in (first, again):
        assert waveform.dtype == np.float32 and waveform.shape == expected.shape
        assert waveform.tobytes() == expected.tobytes()
    assert not again.flags.writeable


def test_second_load_does_not_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip = _wav(tmp_path / "a.wav", seed=2)
    cache = _cache(tmp_path)
    decoded = cache.load(clip)

    def refuse(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(audio_cache, "load_audio", refuse)
    assert cache.load(clip).tobytes() == decoded.tobytes()
    assert cache.load(clip, digest=file_digest(clip)).tobytes() == decoded.tobytes()
    copy = _wav(tmp_path / "renamed copy.wav", seed=2)  # same content, other name: no decode either
    assert cache.load(copy).tobytes() == decoded.tobytes()


def test_changed_file_is_decoded_again(tmp_path: Path, decodes: list[Path]) -> None:
    clip = _wav(tmp_path / "a.wav", seed=3)
    old = time.time() - 3600
    os.utime(clip, (old, old))
    cache = _cache(tmp_path)
    before = cache.load(clip)
    _wav(clip, seed=4)  # new content, same size
    os.utime(clip, (old + 60, old + 60))
    after = cache.load(clip)
    assert len(decodes) == 2 and after.tobytes() != before.tobytes()
    assert after.tobytes() == load_audio(clip, 16000, 0.3).tobytes()


def test_sample_rates_and_crops_get_their_own_stores(tmp_path: Path, decodes: list[Path]) -> None:
    clip = _wav(tmp_path / "a.wav", seed=5)
    caches = [_cache(tmp_path, 16000, 0.3), _cache(tmp_path, 32000, 0.3), _cache(tmp_path, 16000, None),
              _cache(tmp_path, 16000, 0.25)]
    assert len({cache.store.directory for cache in caches}) == 4
    waveforms = [cache.load(clip) for cache in caches]
    assert [len(waveform) for waveform in waveforms] == [4800, 9600, 8000, 4000] and len(decodes) == 4
    def directory(rate: int, seconds: float | None, pipeline: dict = PIPELINE) -> Path:
        return AudioCache(tmp_path / "audio", rate, seconds, pipeline).store.directory

    assert directory(16000, 0.3) == caches[0].store.directory and directory(16000, 1) == directory(16000, 1.0)
    assert directory(16000, 1, {**PIPELINE, "resampler": "other"}) != directory(16000, 1)
    description = caches[1].store.description()["info"]
    assert description["sample_rate"] == 32000 and description["seconds"] == 0.3 and description["pipeline"] == PIPELINE


def test_damaged_entry_is_detected_and_decoded_again(tmp_path: Path, decodes: list[Path]) -> None:
    clip = _wav(tmp_path / "a.wav", seed=6)
    cache = _cache(tmp_path)
    expected = cache.load(clip)
    digest = file_digest(clip)
    shard, offset, nbytes = cache.store.location(digest)
    with open(shard, "r+b") as handle:
        handle.seek(offset + nbytes // 2)
        handle.write(b"\x7f\x7f\x7f\x7f")
    again = cache.load(clip)
    assert again.tobytes() == expected.tobytes() and len(decodes) == 2
    assert [key for key, _ in cache.take_damaged()] == [digest]
    assert cache.load(clip).tobytes() == expected.tobytes() and len(decodes) == 2


def test_batch_api_and_refusals(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    wave = np.linspace(-1, 1, 4800, dtype=np.float32)
    cache.put("d1", wave)
    assert cache.missing(["d0", "d1"]) == [0]
    found = cache.get_many(["d1", "d0"])
    assert found[1] is None and found[0].tobytes() == wave.tobytes() and cache.get("d0") is None
    with pytest.raises(ValueError):
        cache.put("d2", wave.astype(np.float64))
    with pytest.raises(ValueError):
        cache.put("d2", wave[:100])


def test_default_audio_cache_lives_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOBENCH_CACHE", str(tmp_path / "cache"))
    clip = _wav(tmp_path / "a.wav", seed=7)
    cache = default_audio_cache(16000, 0.3, PIPELINE)
    assert cache.store.directory.parent == tmp_path / "cache" / "audio"
    assert cache.load(clip).tobytes() == load_audio(clip, 16000, 0.3).tobytes()
    assert (tmp_path / "cache" / "content-ids" / "index.sqlite").exists()
