"""Downloading the ESC-50 archive: pinned, verified, and never unpacked unless complete and official."""

from __future__ import annotations

import pytest

from audiobench.download import DownloadError
from test_download import SERVED, _zip_bytes, server  # noqa: F401 - the local HTTP server fixture


def _esc50_zip(top: str, rows: int, audio: int | None = None, meta: bool = True) -> bytes:
    """An ESC-50 archive: the first ``rows`` rows of the real metadata and ``audio`` (default: ``rows``) stub .wav files."""
    from shared_material import ESC50, require

    lines = require(ESC50 / "meta" / "esc50.csv").read_text().splitlines()[:1 + rows]
    members = {f"{top}/meta/esc50.csv": ("\n".join(lines) + "\n").encode()} if meta else {}
    for line in lines[1:1 + (rows if audio is None else audio)]:
        members[f"{top}/audio/{line.split(',')[0]}"] = b"RIFF"
    members[f"{top}/README.md"] = b"ESC-50"
    return _zip_bytes(members)


@pytest.fixture
def esc50_module(server, monkeypatch):
    import dataclasses

    from audiobench.datasets import esc50

    url = f"{server}/nolength/esc50.zip"  # like GitHub's generated archives: no Content-Length
    monkeypatch.setattr(esc50, "ARCHIVE_URL", url)
    monkeypatch.setattr(esc50, "ARCHIVE", dataclasses.replace(esc50.ARCHIVE, url=url))
    return esc50


def test_esc50_archive_is_pinned_to_a_commit() -> None:
    from audiobench.datasets import esc50

    assert "master" not in esc50.ARCHIVE_URL and esc50.ARCHIVE.url == esc50.ARCHIVE_URL
    assert esc50.ARCHIVE_URL.startswith("https://github.com/karolpiczak/ESC-50/archive/")
    assert esc50.ARCHIVE.file_name.endswith(".zip") and esc50.ARCHIVE.verification


def test_esc50_download_is_verified_and_unpacked(esc50_module, isolated_cache) -> None:
    SERVED["esc50.zip"] = _esc50_zip("ESC-50-33c8ce9e", rows=2000)
    root = esc50_module.download_esc50(progress=lambda *a: None)
    assert root == isolated_cache / "datasets" / esc50_module.ARCHIVE_ROOT
    assert (root / "meta" / "esc50.csv").is_file() and len(list((root / "audio").iterdir())) == 2000
    assert sorted(p.name for p in root.parent.iterdir()) == [root.name]  # no staging folder left


def test_esc50_archive_cut_short_is_never_unpacked(esc50_module, isolated_cache) -> None:
    SERVED["esc50.zip"] = _esc50_zip("ESC-50-33c8ce9e", rows=2000)[:5000]
    with pytest.raises(DownloadError, match="incomplete"):
        esc50_module.download_esc50(progress=lambda *a: None)
    assert not (isolated_cache / "datasets").exists() or not any((isolated_cache / "datasets").iterdir())
    assert (isolated_cache / "downloads" / f"{esc50_module.ARCHIVE.file_name}.part").is_file()


@pytest.mark.parametrize("archive, message", [
    (dict(rows=2000, meta=False), "does not unpack to ESC-50"),
    (dict(rows=2000, audio=1999), "1999 of 2000 clips"),
    (dict(rows=20), "20 of 2000 clips; not the official data"),  # complete in itself, but not the official list
])
def test_unpacked_esc50_is_checked_before_it_is_moved_into_place(esc50_module, isolated_cache, archive,
                                                                  message) -> None:
    from audiobench.errors import DatasetError

    SERVED["esc50.zip"] = _esc50_zip("ESC-50-33c8ce9e", **archive)
    with pytest.raises(DatasetError, match=message) as info:
        esc50_module.download_esc50(progress=lambda *a: None)
    assert "Delete" in info.value.hint
    datasets = isolated_cache / "datasets"
    assert not datasets.exists() or list(datasets.iterdir()) == []
