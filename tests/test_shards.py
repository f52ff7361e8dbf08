"""ShardStore: round trips, batching, rollover, damage detection, interrupted writes, several processes."""

from __future__ import annotations

import multiprocessing
import pickle
from pathlib import Path

import numpy as np
import pytest

import audiobench.shards as shards
from audiobench.errors import CacheWarning
from audiobench.shards import ShardStore

ARRAYS = {
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4),
    "f16": np.linspace(-1, 1, 7).astype(np.float16),
    "i16": np.array([-32768, 0, 1, 32767], dtype=np.int16),
    "u8-3d": np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    "f64-scalar": np.array(3.25),
    "empty": np.zeros((0, 5), dtype=np.float32),
    "strided": np.arange(20, dtype=np.float32)[::3],
}


def _flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))


def test_round_trip_of_dtypes_and_shapes(tmp_path: Path) -> None:
    store = ShardStore(tmp_path / "store")
    store.put_many(ARRAYS.items())
    reopened = ShardStore(tmp_path / "store")
    for key, array in ARRAYS.items():
        found = reopened.get(key)
        assert found is not None and found.dtype == array.dtype and found.shape == array.shape
        assert np.array_equal(found, array)
    assert len(reopened) == len(ARRAYS) and "f16" in reopened and "nope" not in reopened
    for key in ARRAYS:
        assert reopened.location(key)[1] % shards.ALIGNMENT == 0
    with pytest.raises(KeyError):
        reopened.location("nope")
    assert reopened.take_damaged() == []


def test_get_many_order_missing_and_replacement(tmp_path: Path) -> None:
    store = ShardStore(tmp_path)
    store.put("a", np.ones(3, np.float32))
    store.put("c", np.full(2, 7, np.int16))
    found = store.get_many(["c", "b", "a", "c"])
    assert found[1] is None
    assert np.array_equal(found[0], [7, 7]) and np.array_equal(found[2], [1, 1, 1]) and np.array_equal(found[3], [7, 7])
    assert store.missing(["a", "b", "c", "d"]) == [1, 3]
    assert store.missing([]) == [] and store.get_many([]) == []
    store.put("a", np.zeros(5, np.float16))  # a key put again is replaced
    assert np.array_equal(store.get("a"), np.zeros(5, np.float16)) and len(store) == 2
    many = [f"k{i}" for i in range(1200)]  # more than one sqlite query chunk
    store.put_many((key, np.array([i], np.int32)) for i, key in enumerate(many))
    assert store.missing(many + ["zz"]) == [1200]
    assert [int(array[0]) for array in store.get_many(many)] == list(range(1200))


def test_views_are_read_only(tmp_path: Path) -> None:
    store = ShardStore(tmp_path)
    store.put("x", np.arange(4, dtype=np.float32))
    view = store.get("x")
    assert not view.flags.writeable
    with pytest.raises(ValueError):
        view[0] = 1.0


def test_rollover_to_several_shards(tmp_path: Path) -> None:
    store = ShardStore(tmp_path, max_shard_bytes=300)
    arrays = {f"k{i}": np.full(25, i, dtype=np.float32) for i in range(10)}  # 100 bytes each
    for key, array in arrays.items():
        store.put(key, array)
    assert len(list(tmp_path.glob("*.shard"))) >= 4
    assert all(path.stat().st_size <= 320 for path in tmp_path.glob("*.shard"))
    for key, array in zip(arrays, store.get_many(list(arrays))):
        assert np.array_equal(array, arrays[key])


@pytest.mark.parametrize("mapped", [True, False], ids=["mmap", "pread"])
def test_flipped_byte_is_damage_and_reput_works(tmp_path: Path, mapped: bool) -> None:
    store = ShardStore(tmp_path, mapped=mapped)
    store.put_many([("good", np.arange(8, dtype=np.float32)), ("bad", np.arange(16, dtype=np.int16))])
    assert store.get("bad") is not None  # mapped before the damage, too
    shard, offset, nbytes = store.location("bad")
    _flip_byte(shard, offset + nbytes - 1)
    assert store.get_many(["good", "bad"])[1] is None
    damaged = store.take_damaged()
    assert [key for key, _ in damaged] == ["bad"] and "crc32" in damaged[0][1]
    assert "bad" not in store and store.take_damaged() == []
    assert np.array_equal(store.get("good"), np.arange(8, dtype=np.float32))
    store.put("bad", np.arange(16, dtype=np.int16))
    assert np.array_equal(store.get("bad"), np.arange(16, dtype=np.int16))


def test_without_verify_a_flipped_byte_is_not_checked(tmp_path: Path) -> None:
    ShardStore(tmp_path).put("x", np.zeros(4, np.uint8))
    shard, offset, _ = ShardStore(tmp_path).location("x")
    _flip_byte(shard, offset)
    assert ShardStore(tmp_path, verify=False).get("x")[0] == 0xFF


@pytest.mark.parametrize("mapped", [True, False], ids=["mmap", "pread"])
def test_truncated_and_deleted_shards_are_damage(tmp_path: Path, mapped: bool) -> None:
    store = ShardStore(tmp_path, max_shard_bytes=64, mapped=mapped)
    store.put_many([("cut", np.ones(40, np.float32)), ("gone", np.ones(40, np.float32))])
    assert all(array is not None for array in store.get_many(["cut", "gone"]))  # both mapped now
    cut, offset, nbytes = store.location("cut")
    gone, _, _ = store.location("gone")
    assert cut != gone
    with open(cut, "r+b") as handle:
        handle.truncate(offset + nbytes // 2)
    gone.unlink()
    assert store.get_many(["cut", "gone"]) == [None, None]
    reasons = dict(store.take_damaged())
    assert "too short" in reasons["cut"] and "missing" in reasons["gone"]
    assert store.missing(["cut", "gone"]) == [0, 1]


def test_unreadable_metadata_is_damage(tmp_path: Path) -> None:
    store = ShardStore(tmp_path)
    store.put("x", np.ones(4, np.float32))
    store._db.run(lambda connection: connection.execute("UPDATE entries SET shape = 'not json'"))
    assert store.get("x") is None
    assert "metadata" in store.take_damaged()[0][1] and "x" not in store


def test_interrupted_write_leaves_harmless_unindexed_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ShardStore(tmp_path)
    store.put("before", np.arange(5, dtype=np.float32))

    def interrupted(sql, rows):
        raise KeyboardInterrupt

    monkeypatch.setattr(store._db, "execute_many", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.put("lost", np.arange(100, dtype=np.float32))  # the bytes are written, the row never is
    monkeypatch.undo()
    shard, offset, nbytes = store.location("before")
    assert shard.stat().st_size > 400  # the orphaned bytes are there
    assert "lost" not in store
    store.put("after", np.arange(3, dtype=np.int16))
    reopened = ShardStore(tmp_path)
    assert np.array_equal(reopened.get("before"), np.arange(5, dtype=np.float32))
    assert np.array_equal(reopened.get("after"), np.arange(3, dtype=np.int16))
    assert reopened.get("lost") is None and reopened.take_damaged() == []


def test_corrupt_index_is_rebuilt_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "index.sqlite").write_bytes(b"this is not a sqlite database" * 100)
    with pytest.warns(CacheWarning, match="rebuilt"):
        store = ShardStore(tmp_path)
        assert store.get("x") is None
    store.put("x", np.ones(2, np.float32))
    assert np.array_equal(store.get("x"), [1, 1])


def _put_from_child(store: ShardStore, worker: int) -> None:
    for i in range(20):
        store.put(f"w{worker}-{i}", np.full(50, worker * 100 + i, dtype=np.int32))
    store.put_many((f"w{worker}-batch{i}", np.full(3, i, dtype=np.float16)) for i in range(30))


def test_processes_put_concurrently(tmp_path: Path) -> None:
    store = ShardStore(tmp_path)
    store.put("parent", np.zeros(3, np.float32))  # the parent's connection and shard are open at the fork
    assert store.get("parent") is not None
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_put_from_child, args=(store, worker)) for worker in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    assert len(list(tmp_path.glob("*.shard"))) == 4  # one shard per writing process
    keys = [f"w{w}-{i}" for w in range(3) for i in range(20)] + [f"w{w}-batch{i}" for w in range(3) for i in range(30)]
    found = store.get_many(keys)
    assert all(array is not None for array in found) and store.take_damaged() == []
    assert [int(array[0]) for array in found[:60]] == [w * 100 + i for w in range(3) for i in range(20)]
    store.put("parent-again", np.ones(1, np.float32))
    assert len(store) == len(keys) + 2


def test_store_pickles_for_spawned_workers_and_describes_itself(tmp_path: Path) -> None:
    store = ShardStore(tmp_path)
    store.put("x", np.arange(3, dtype=np.int16))
    store.describe({"what": "test"})
    store.describe({"what": "test"})
    copy = pickle.loads(pickle.dumps(store))
    assert np.array_equal(copy.get("x"), [0, 1, 2])
    assert copy.description()["info"] == {"what": "test"}
    store.close()
    assert np.array_equal(store.get("x"), [0, 1, 2])  # reopens after close


def test_pread_reads_are_writable_copies(tmp_path: Path) -> None:
    store = ShardStore(tmp_path, mapped=False)
    store.put("x", np.arange(6, dtype=np.float64).reshape(2, 3))
    first = store.get("x")
    assert first.shape == (2, 3) and first.flags.writeable
    first[0, 0] = 99
    assert store.get("x")[0, 0] == 0
    store.close()
