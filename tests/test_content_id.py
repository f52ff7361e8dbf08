"""ContentIndex: same digests as file_digest, files read once, changes and racy files caught, robust db."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sqlite3
import time
from pathlib import Path

import pytest

import audiobench.content_id as content_id
from audiobench.cache import file_digest
from audiobench.content_id import ContentIndex, content_digest, default_content_index
from audiobench.errors import CacheWarning

OLD = time.time() - 3600  # an mtime well outside the racy window


def _write(path: Path, data: bytes, mtime: float | None = OLD) -> Path:
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Paths hashed by content_id (the real hashing still happens)."""
    calls: list[Path] = []

    def counting(path: Path) -> str:
        calls.append(Path(path))
        return file_digest(path)

    monkeypatch.setattr(content_id, "file_digest", counting)
    return calls


def _rows(index: ContentIndex) -> int:
    with sqlite3.connect(index.db_path) as connection:
        return connection.execute("SELECT COUNT(*) FROM digests").fetchone()[0]


def test_digest_equals_file_digest_and_unchanged_files_are_not_read(tmp_path: Path, hash_calls: list[Path]) -> None:
    files = [_write(tmp_path / f"clip{i}.wav", bytes([i]) * (1000 + i)) for i in range(5)]
    index = ContentIndex(tmp_path / "ids.sqlite")
    expected = [file_digest(path) for path in files]
    assert index.digests(files) == expected and len(hash_calls) == 5
    assert ContentIndex(tmp_path / "ids.sqlite").digests(files) == expected  # a later run: nothing read
    assert content_digest(files[2], index) == expected[2]
    assert index.digests([str(files[1]), files[1], tmp_path / "." / "clip1.wav"]) == [expected[1]] * 3
    assert len(hash_calls) == 5 and _rows(index) == 5


def test_paths_through_a_symlinked_directory_share_an_entry(tmp_path: Path, hash_calls: list[Path]) -> None:
    (tmp_path / "real").mkdir()
    clip = _write(tmp_path / "real" / "a.wav", b"abc")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    index = ContentIndex(tmp_path / "ids.sqlite")
    assert index.digest(clip) == index.digest(tmp_path / "link" / "a.wav") == file_digest(clip)
    assert len(hash_calls) == 1


def test_changed_file_is_hashed_again(tmp_path: Path, hash_calls: list[Path]) -> None:
    clip = _write(tmp_path / "a.wav", b"x" * 4096)
    index = ContentIndex(tmp_path / "ids.sqlite")
    first = index.digest(clip)
    _write(clip, b"y" * 4096, mtime=OLD + 60)  # same size, new content, new mtime
    second = index.digest(clip)
    assert second == file_digest(clip) != first and len(hash_calls) == 2
    assert index.digest(clip) == second and len(hash_calls) == 2


def test_racily_clean_file_is_not_remembered(tmp_path: Path, hash_calls: list[Path]) -> None:
    clip = _write(tmp_path / "fresh.wav", b"just written", mtime=None)  # mtime is now
    index = ContentIndex(tmp_path / "ids.sqlite")
    assert index.digest(clip) == index.digest(clip) == file_digest(clip)
    assert len(hash_calls) == 2 and _rows(index) == 0
    os.utime(clip, (OLD, OLD))
    index.digest(clip)
    index.digest(clip)
    assert len(hash_calls) == 3 and _rows(index) == 1


def test_corrupt_database_is_rebuilt_with_a_warning(tmp_path: Path) -> None:
    clip = _write(tmp_path / "a.wav", b"abc")
    db_path = _write(tmp_path / "ids.sqlite", b"garbage, not sqlite " * 200)
    with pytest.warns(CacheWarning, match="rebuilt"):
        assert ContentIndex(db_path).digest(clip) == file_digest(clip)
    assert _rows(ContentIndex(db_path)) == 1


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ContentIndex(tmp_path / "ids.sqlite").digest(tmp_path / "absent.wav")


def _digests_in_child(index: ContentIndex, files: list[Path], results) -> None:
    results.put(index.digests(files))


def test_works_after_fork_and_pickling(tmp_path: Path, hash_calls: list[Path]) -> None:
    files = [_write(tmp_path / f"c{i}.wav", bytes([i]) * 100) for i in range(4)]
    index = ContentIndex(tmp_path / "ids.sqlite")
    index.digests(files[:2])  # the parent's connection is open at the fork
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_digests_in_child, args=(index, files, results))
    child.start()
    child_digests = results.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0
    assert child_digests == [file_digest(path) for path in files]
    assert _rows(index) == 4  # the child's digests were stored
    assert index.digests(files) == child_digests and len(hash_calls) == 2  # parent: only its own 2 hashes
    copy = pickle.loads(pickle.dumps(index))
    assert copy.digests(files) == child_digests and len(hash_calls) == 2


def test_many_files_in_one_call(tmp_path: Path, hash_calls: list[Path]) -> None:
    files = [_write(tmp_path / f"{i}.bin", i.to_bytes(4, "little")) for i in range(1100)]
    index = ContentIndex(tmp_path / "ids.sqlite")
    expected = [file_digest(path) for path in files]
    assert index.digests(files + files[:3]) == expected + expected[:3]
    assert len(hash_calls) == 1100 and _rows(index) == 1100
    assert index.digests(reversed(files)) == expected[::-1] and len(hash_calls) == 1100


def test_default_index_lives_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOBENCH_CACHE", str(tmp_path / "cache"))
    clip = _write(tmp_path / "a.wav", b"abc")
    assert content_digest(clip) == file_digest(clip)
    assert default_content_index() is default_content_index()
    assert default_content_index().db_path == tmp_path / "cache" / "content-ids" / "index.sqlite"
    assert _rows(default_content_index()) == 1
