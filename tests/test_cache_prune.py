"""``audiobench cache prune``: what no run used for a while goes, what runs use stays, and pruning never
changes a number (everything pruned is computed again)."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from audiobench import shards
from audiobench.cache_prune import IN_USE, REMOVED, WOULD_REMOVE, prune, store_last_used
from audiobench.cli import app
from audiobench.protocols.split_cache import SplitCache
from audiobench.runner import RunOptions, run
from audiobench.shard_compaction import find_stores
from audiobench.shards import LOCK_FILE, ShardStore

DAY = 86400.0
runner = CliRunner()


def _age(path: Path, days: float) -> None:
    """Set ``path``'s mtime (every file below it, for a directory) ``days`` into the past."""
    when = time.time() - days * DAY
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (when, when))


def _run(cache: Path, output: Path, monkeypatch) -> dict:
    monkeypatch.setenv("AUDIOBENCH_CACHE", str(cache))
    record, _ = run(RunOptions(task="synthetic", model="logmel-stats", output_dir=output, device="cpu", cv=3,
                               num_workers=0))
    return record


@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> tuple[Path, dict]:
    """A cache filled by one synthetic run (audio store, embedding store, probe outputs) and its record."""
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        record = _run(cache, tmp_path_factory.mktemp("results"), patch)
    return cache, record


def _copy(filled: tuple[Path, dict], tmp_path: Path) -> Path:
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(filled[0], cache)
    return cache


def test_recent_entries_stay(filled, tmp_path) -> None:
    cache = _copy(filled, tmp_path)
    assert {p.parent.name for p in find_stores(cache)} == {"audio", "embeddings"}
    assert prune(cache, 1 * DAY) == []
    assert len(find_stores(cache)) == 2 and list((cache / "probe-outputs").glob("*/*.npz"))


def test_unused_entries_go_and_the_next_run_computes_them_again(filled, tmp_path, monkeypatch) -> None:
    cache = _copy(filled, tmp_path)
    (embeddings,) = [p for p in find_stores(cache) if p.parent.name == "embeddings"]
    (audio,) = [p for p in find_stores(cache) if p.parent.name == "audio"]
    splits = sorted((cache / "probe-outputs").glob("*/*.npz"))
    _age(embeddings, 40)
    for entry in splits:
        _age(entry, 40)

    listed = prune(cache, 30 * DAY, dry_run=True)
    assert {(item.kind, item.outcome) for item in listed} == {("store", WOULD_REMOVE), ("probe outputs", WOULD_REMOVE)}
    assert embeddings.is_dir() and all(entry.exists() for entry in splits)  # a dry run removes nothing

    removed = prune(cache, 30 * DAY)
    assert [(item.path, item.outcome) for item in removed if item.kind == "store"] == [(embeddings, REMOVED)]
    assert sum(item.kind == "probe outputs" for item in removed) == len(splits)
    assert next(item for item in removed if item.kind == "store").nbytes > 0
    assert not embeddings.exists() and audio.is_dir() and not any(entry.exists() for entry in splits)

    again = _run(cache, tmp_path / "again", monkeypatch)
    first = filled[1]
    assert again["embeddings"]["computed"] == first["embeddings"]["total"]  # pruned: computed again
    assert again["embeddings"]["model_built"] and again["probe_outputs"]["computed"] == len(splits)
    assert again["metrics"] == first["metrics"]


def test_a_store_in_use_is_kept_and_named(filled, tmp_path) -> None:
    cache = _copy(filled, tmp_path)
    (audio,) = [p for p in find_stores(cache) if p.parent.name == "audio"]
    _age(audio, 40)
    held = os.open(audio / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_SH)  # a reader in the middle of a read (or a compaction)
        (item,) = prune(cache, 30 * DAY)
        assert (item.path, item.outcome) == (audio, IN_USE) and audio.is_dir()
    finally:
        os.close(held)
    user = ShardStore(audio)
    assert len(user) > 0  # a run that has the store open, between two of its reads
    _age(audio, 40)
    (item,) = prune(cache, 30 * DAY)
    assert item.outcome == IN_USE and audio.is_dir()
    assert all(array is not None for array in user.get_many(_keys(audio)))  # the run goes on unharmed
    user.close()  # the run is done with it
    _age(audio, 40)
    assert [item.outcome for item in prune(cache, 30 * DAY)] == [REMOVED] and not audio.exists()


def _keys(store: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(store / "index.sqlite") as index:
        return [key for (key,) in index.execute("SELECT key FROM entries")]


def test_a_store_removed_before_its_first_use_is_made_anew(tmp_path) -> None:
    store = ShardStore(tmp_path / "store")  # a run has made its store object but not used it yet
    import shutil

    shutil.rmtree(tmp_path / "store")  # pruned meanwhile
    store.put_many([("a", np.arange(3, dtype=np.float32))])
    np.testing.assert_array_equal(store.get_many(["a"])[0], np.arange(3, dtype=np.float32))
    assert (tmp_path / "store" / "store.users").is_file()
    store.close()


def test_a_store_made_before_the_use_mark_counts_its_newest_file(tmp_path) -> None:
    store = ShardStore(tmp_path / "store")
    store.put_many([("a", np.arange(3, dtype=np.float32))])
    store.close()
    _age(tmp_path / "store" / LOCK_FILE, 40)  # as made long ago by a version that never touched it
    assert store_last_used(tmp_path / "store") > time.time() - 60  # but written just now
    assert prune(tmp_path, 30 * DAY) == []


def test_using_a_store_or_a_split_entry_renews_its_last_use(tmp_path, monkeypatch) -> None:
    store = ShardStore(tmp_path / "store")
    store.put_many([("a", np.arange(4, dtype=np.float32))])
    store.close()
    _age(tmp_path / "store", 40)
    assert store_last_used(tmp_path / "store") < time.time() - 39 * DAY
    reader = ShardStore(tmp_path / "store")
    assert reader.get_many(["a"])[0] is not None
    assert store_last_used(tmp_path / "store") > time.time() - 60
    reader.close()

    monkeypatch.setattr(shards, "USE_MARK_INTERVAL_S", 3600.0)  # a process marks a store at most that often
    busy = ShardStore(tmp_path / "store")
    busy.get_many(["a"])
    _age(tmp_path / "store", 40)
    busy.get_many(["a"])
    assert store_last_used(tmp_path / "store") < time.time() - 39 * DAY
    busy.close()

    splits = SplitCache(tmp_path / "splits")
    splits.put("k" * 32, np.zeros((2, 3), dtype=np.float32), {})
    (entry,) = (tmp_path / "splits").glob("*/*.npz")
    _age(entry, 40)
    assert splits.get("k" * 32, 2, 3) is not None
    assert entry.stat().st_mtime > time.time() - 60


def test_feature_matrices_are_never_pruned(tmp_path) -> None:
    matrix = tmp_path / "features" / "0123"  # a running streaming probe's, or one an interrupted run left
    matrix.mkdir(parents=True)
    (matrix / "shard-00000.f32").write_bytes(bytes(64))
    _age(matrix, 40)
    assert prune(tmp_path, 0.0) == [] and matrix.is_dir()


def test_the_command(filled, tmp_path) -> None:
    cache = _copy(filled, tmp_path)
    (embeddings,) = [p for p in find_stores(cache) if p.parent.name == "embeddings"]
    _age(embeddings, 10)
    listed = json.loads(runner.invoke(app, ["cache", "info", "--cache-dir", str(cache), "--json"]).stdout)
    last_used = {row["store"].split("/")[0]: row["last_used"] for row in listed["stores"]}
    shown = time.strftime("%Y-%m-%d %H:%M", time.localtime(store_last_used(embeddings)))
    assert last_used["embeddings"] == shown and last_used["embeddings"] < last_used["audio"]  # 10 days older
    result = runner.invoke(app, ["cache", "prune", "--cache-dir", str(cache), "--unused-for", "7", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "logmel-stats (embedding)" in result.output and "would be removed" in result.output
    assert "would free" in result.output and embeddings.is_dir()
    result = runner.invoke(app, ["cache", "prune", "--cache-dir", str(cache), "--unused-for", "7", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(item["path"], item["outcome"]) for item in data["items"]] == [
        (str(embeddings.relative_to(cache)), REMOVED)]
    assert data["bytes"] > 0 and not embeddings.exists()
    result = runner.invoke(app, ["cache", "prune", "--cache-dir", str(cache), "--unused-for", "-1"])
    assert result.exit_code != 0
