"""Compaction of shard stores: dead bytes reclaimed, every live entry kept and verified, locks respected."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import numpy as np
import pytest

from audiobench.errors import AudiobenchError
from audiobench.shard_compaction import compact, find_stores, usage
from audiobench.shards import LOCK_FILE, ShardStore


def _values(key: int, version: int = 0) -> np.ndarray:
    return np.full(256, key + 1000 * version, dtype=np.float32)


def _store_with_dead_bytes(directory: Path, mapped: bool = True) -> ShardStore:
    store = ShardStore(directory, mapped=mapped)
    store.put_many([(f"k{i}", _values(i)) for i in range(100)])
    store.put_many([(f"k{i}", _values(i, version=1)) for i in range(60)])  # 60 entries replaced: dead bytes
    return store


@pytest.mark.parametrize("mapped", [True, False])
def test_compaction_reclaims_dead_bytes_and_keeps_every_entry(tmp_path: Path, mapped: bool) -> None:
    store = _store_with_dead_bytes(tmp_path / "s", mapped)
    before = usage(store)
    assert before.entries == 100 and before.waste > 0.3
    done = compact(ShardStore(tmp_path / "s"))  # as another process would
    assert done.rewritten == 1 and done.removed == 1 and not done.dropped
    assert done.after.entries == 100 and done.after.waste < 0.01
    assert done.after.shard_bytes < 0.65 * before.shard_bytes
    fresh = ShardStore(tmp_path / "s", mapped=mapped)
    for reader in (store, fresh):  # the store that wrote the old shard reads the moved entries too
        values = reader.get_many([f"k{i}" for i in range(100)])
        for i, value in enumerate(values):
            np.testing.assert_array_equal(value, _values(i, version=1 if i < 60 else 0))
        assert reader.take_damaged() == []


def test_a_writer_whose_shard_was_compacted_away_starts_a_new_one(tmp_path: Path) -> None:
    store = _store_with_dead_bytes(tmp_path / "s")
    old_shards = {path.name for path in (tmp_path / "s").glob("*.shard")}
    np.testing.assert_array_equal(store.get("k0"), _values(0, 1))  # maps the old shard in this process
    compact(ShardStore(tmp_path / "s"))
    store.put("new", _values(7, 3))
    assert not old_shards & {path.name for path in (tmp_path / "s").glob("*.shard")}  # name never reused
    np.testing.assert_array_equal(store.get("new"), _values(7, 3))
    np.testing.assert_array_equal(store.get("k0"), _values(0, 1))
    assert store.take_damaged() == []


def test_unreferenced_shards_go_and_shards_under_the_threshold_stay(tmp_path: Path) -> None:
    store = ShardStore(tmp_path / "s")
    store.put_many([(f"k{i}", _values(i)) for i in range(10)])
    store.put("k0", _values(0, 1))  # one dead entry of 11: under the 25 % threshold
    (tmp_path / "s" / "999-deadbeef0000.shard").write_bytes(b"\0" * 4096)  # a killed writer's leftover
    done = compact(store)
    assert done.rewritten == 0 and done.removed == 1
    assert not (tmp_path / "s" / "999-deadbeef0000.shard").exists()
    assert [path.name for path in (tmp_path / "s").glob("*.shard")] == [store._local().shard]
    assert compact(store, min_waste=0.0).rewritten == 1  # any waste at all
    np.testing.assert_array_equal(store.get("k0"), _values(0, 1))


def test_a_damaged_entry_is_dropped_and_named_while_compacting(tmp_path: Path) -> None:
    store = _store_with_dead_bytes(tmp_path / "s", mapped=False)
    shard, offset, _ = store.location("k80")
    with open(shard, "r+b") as handle:
        handle.seek(offset + 3)
        byte = handle.read(1)
        handle.seek(offset + 3)
        handle.write(bytes([byte[0] ^ 0x40]))
    done = compact(ShardStore(tmp_path / "s"))
    assert [key for key, _ in done.dropped] == ["k80"] and "crc32" in done.dropped[0][1]
    assert done.after.entries == 99
    assert store.get("k80") is None and store.get("k81") is not None


def test_compaction_waits_for_readers_and_writers_then_says_the_store_is_busy(tmp_path: Path) -> None:
    store = _store_with_dead_bytes(tmp_path / "s")
    descriptor = os.open(tmp_path / "s" / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH)  # what a read or write of another process holds
        with pytest.raises(AudiobenchError, match="in use by another process"):
            compact(store, timeout_s=0.2)
    finally:
        os.close(descriptor)
    assert compact(store, timeout_s=0.2).rewritten == 1


def test_find_stores_lists_every_store_under_a_root(tmp_path: Path) -> None:
    for name in ("embeddings/a", "embeddings/b", "audio/c"):
        ShardStore(tmp_path / name).put("x", _values(1))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "content-ids").mkdir()
    (tmp_path / "content-ids" / "index.sqlite").write_bytes(b"")  # another kind of database: not a store
    assert find_stores(tmp_path) == [tmp_path / "audio/c", tmp_path / "embeddings/a", tmp_path / "embeddings/b"]
    assert find_stores(tmp_path / "missing") == []


def test_cache_commands_report_and_compact_the_stores_of_a_cache_root(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from audiobench.cache import EmbeddingCache
    from audiobench.cli import app

    cache = EmbeddingCache(tmp_path / "embeddings", {"model": "mn04", "config": {}}, shape=(256,))
    cache.put_many([(f"k{i}", _values(i)) for i in range(40)])
    cache.put_many([(f"k{i}", _values(i, 1)) for i in range(30)])
    runner = CliRunner()
    shown = runner.invoke(app, ["cache", "info", "--cache-dir", str(tmp_path)])
    assert shown.exit_code == 0 and "mn04 (embedding)" in shown.output and "not used by any entry" in shown.output
    listed = json.loads(runner.invoke(app, ["cache", "info", "--cache-dir", str(tmp_path), "--json"]).output)
    assert [(row["holds"], row["entries"]) for row in listed["stores"]] == [("mn04 (embedding)", 40)]
    assert listed["stores"][0]["waste"] > 0.4
    done = json.loads(runner.invoke(app, ["cache", "compact", "--cache-dir", str(tmp_path), "--json"]).output)
    assert done["stores"][0]["rewritten"] == 1 and done["stores"][0]["waste"] < 0.01
    assert done["stores"][0]["bytes_before"] > 1.5 * done["stores"][0]["shard_bytes"]
    reopened = EmbeddingCache(tmp_path / "embeddings", {"model": "mn04", "config": {}}, shape=(256,))
    first, last = reopened.get_many(["k0", "k39"])
    np.testing.assert_array_equal(first, _values(0, 1))
    np.testing.assert_array_equal(last, _values(39))
