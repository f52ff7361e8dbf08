"""Embedding cache (atomic, content-addressed) and resumable embedding extraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiobench.cache import EmbeddingCache
from audiobench.datasets.base import Clip
from audiobench.embeddings import cache_for, clip_key, extract_embeddings


def _tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_put_get_round_trip(tmp_path) -> None:
    cache = EmbeddingCache(tmp_path, {"model": "m", "checkpoint_sha256": None})
    embedding = np.linspace(-1, 1, 16, dtype=np.float32)
    assert cache.get("ab" * 32) is None
    cache.put("ab" * 32, embedding)
    got = cache.get("ab" * 32)
    assert got is not None and got.dtype == np.float32
    np.testing.assert_array_equal(got, embedding)
    cache.put("ab" * 32, embedding * 2)  # overwrite in place
    np.testing.assert_array_equal(cache.get("ab" * 32), embedding * 2)
    assert (cache.directory / "model.json").is_file()
    assert _tmp_files(tmp_path) == []


def test_float64_input_is_stored_as_float32(tmp_path) -> None:
    cache = EmbeddingCache(tmp_path, {"model": "m"})
    cache.put("cd" * 32, np.arange(4, dtype=np.float64))
    assert cache.get("cd" * 32).dtype == np.float32


def test_fingerprints_select_directories(tmp_path) -> None:
    a = EmbeddingCache(tmp_path, {"model": "m", "checkpoint_sha256": "1"})
    b = EmbeddingCache(tmp_path, {"model": "m", "checkpoint_sha256": "2"})
    a_again = EmbeddingCache(tmp_path, {"checkpoint_sha256": "1", "model": "m"})  # key order is irrelevant
    assert a.directory != b.directory
    assert a.directory == a_again.directory
    a.put("ef" * 32, np.ones(3))
    assert b.get("ef" * 32) is None
    assert a_again.get("ef" * 32) is not None


def _shard_of(cache: EmbeddingCache, key: str) -> tuple[Path, int, int]:
    return cache.store.location(key)


@pytest.mark.parametrize("damage", ["random", "truncated", "deleted", "flipped"])
def test_corrupt_entry_is_missing_and_dropped(tmp_path, damage) -> None:
    cache = EmbeddingCache(tmp_path, {"model": "m"})
    key = "0f" * 32
    cache.put(key, np.arange(64, dtype=np.float32))
    shard, offset, nbytes = _shard_of(cache, key)
    raw = bytearray(shard.read_bytes())
    if damage == "random":
        raw[offset:offset + nbytes] = np.random.default_rng(0).bytes(nbytes)
    elif damage == "flipped":
        raw[offset + 7] ^= 0x10
    elif damage == "truncated":
        raw = raw[:offset + nbytes - 40]
    if damage == "deleted":
        shard.unlink()
    else:
        shard.write_bytes(bytes(raw))
    fresh = EmbeddingCache(tmp_path, {"model": "m"})  # another process: no memory map of the old bytes
    assert fresh.get(key) is None
    assert [k for k, _ in fresh.take_damaged()] == [key]
    assert key not in fresh.store
    fresh.put(key, np.ones(2))  # and it can be written again
    np.testing.assert_array_equal(fresh.get(key), np.ones(2))


def test_many_entries_live_in_few_files(tmp_path) -> None:
    cache = EmbeddingCache(tmp_path, {"model": "m"}, shape=(4,))
    keys = [f"{i:064x}" for i in range(1000)]
    for start in range(0, 1000, 100):
        cache.put_many((key, np.full(4, i, np.float32)) for i, key in enumerate(keys[start:start + 100], start))
    assert len(list(cache.directory.rglob("*"))) < 10
    found = dict(cache.scan(keys, chunk=64))
    assert len(found) == 1000 and all(found[i][0] == i for i in range(1000))
    got = cache.get(keys[3])
    got[0] = -1  # reads are the caller's own arrays
    assert cache.get(keys[3])[0] == 3


# --------------------------------------------------------------------------- extraction


@pytest.fixture(scope="module")
def model():
    from audiobench import load_model

    return load_model("logmel-stats")


@pytest.fixture
def clips(tmp_path) -> list[Clip]:
    rng = np.random.default_rng(0)
    result = []
    for i in range(7):
        path = tmp_path / "audio" / f"clip{i}.wav"
        path.parent.mkdir(exist_ok=True)
        t = np.arange(8000) / 16000
        signal = 0.3 * np.sin(2 * np.pi * (300 + 200 * i) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(path, signal.astype(np.float32), 16000, subtype="PCM_16")
        result.append(Clip(clip_id=path.name, path=path, label=i % 2, fold=1))
    return result


def test_clip_key_depends_on_content_and_length(clips) -> None:
    assert clip_key(clips[0].path, 0.5) == clip_key(clips[0].path, 0.5)
    assert clip_key(clips[0].path, 0.5) != clip_key(clips[0].path, 1.0)
    assert clip_key(clips[0].path, 0.5) != clip_key(clips[1].path, 0.5)


def test_second_extraction_computes_nothing(model, clips, tmp_path) -> None:
    cache = cache_for(model, tmp_path / "embeddings")
    first, stats = extract_embeddings(model, clips, 0.5, cache, batch_size=3, num_workers=0)
    assert first.shape == (7, model.embedding_dim) and first.dtype == np.float32
    assert (stats.total, stats.reused, stats.computed) == (7, 0, 7)
    assert np.isfinite(first).all()
    second, stats = extract_embeddings(model, clips, 0.5, cache, batch_size=3, num_workers=0)
    assert (stats.total, stats.reused, stats.computed) == (7, 7, 0)
    np.testing.assert_array_equal(first, second)
    assert _tmp_files(tmp_path / "embeddings") == []


def test_no_cache_and_empty_clip_list(model, clips) -> None:
    uncached, stats = extract_embeddings(model, clips[:2], 0.5, None, batch_size=2, num_workers=0)
    assert uncached.shape == (2, model.embedding_dim) and stats.computed == 2
    empty, stats = extract_embeddings(model, [], 0.5, None, num_workers=0)
    assert empty.shape == (0, model.embedding_dim) and stats.total == 0


def test_interrupted_extraction_resumes(model, clips, tmp_path) -> None:
    reference, _ = extract_embeddings(model, clips, 0.5, None, batch_size=3, num_workers=0)

    class Interrupt(Exception):
        pass

    def stop_after_first_batch(n: int) -> None:
        raise Interrupt(n)

    cache = cache_for(model, tmp_path / "embeddings")
    with pytest.raises(Interrupt):
        extract_embeddings(model, clips, 0.5, cache, batch_size=3, num_workers=0, on_progress=stop_after_first_batch)
    assert _tmp_files(tmp_path / "embeddings") == []
    assert sum(cache.get(clip_key(c.path, 0.5)) is not None for c in clips) == 3

    progress: list[int] = []
    resumed, stats = extract_embeddings(model, clips, 0.5, cache, batch_size=3, num_workers=0,
                                        on_progress=progress.append)
    assert (stats.reused, stats.computed) == (3, 4)
    assert sum(progress) == 7 and progress[0] == 3  # reused clips reported first
    np.testing.assert_allclose(resumed, reference, rtol=1e-6, atol=1e-6)


def test_cache_key_changes_with_the_model(model, tmp_path) -> None:
    from audiobench import load_model

    mn = load_model("mn01")  # random weights: fingerprint carries checkpoint_sha256=None
    assert cache_for(model, tmp_path).directory != cache_for(mn, tmp_path).directory
