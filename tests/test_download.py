"""Verified, resumable downloads (against a local HTTP server) and checkpoint resolution."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import threading
import zipfile
from pathlib import Path

import pytest

from audiobench.download import ArchiveInfo, DownloadError, download, download_archive, sha256_of
from audiobench.errors import CheckpointError

PAYLOAD = os.urandom(3 * 65536 + 123)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


SERVED: dict[str, bytes] = {}  # name -> bytes, at /served/<name> (with Content-Length) and /nolength/<name>


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /file (honouring ``Range: bytes=N-``), /norange/file (ignoring it),
    /short (announces the full length, sends half and hangs up) and 404 elsewhere."""

    requests: list[tuple[str, str | None]] = []

    def log_message(self, *args) -> None:  # keep the test output clean
        pass

    def do_GET(self) -> None:
        range_header = self.headers.get("Range")
        type(self).requests.append((self.path, range_header))
        kind, _, name = self.path.strip("/").partition("/")
        if kind in ("served", "nolength") and name in SERVED:  # SERVED files, with or without Content-Length
            self.send_response(200)
            if kind == "served":
                self.send_header("Content-Length", str(len(SERVED[name])))
            self.end_headers()
            self.wfile.write(SERVED[name])
            self.close_connection = True  # without Content-Length the body ends when the connection closes
            return
        if self.path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2])
            self.close_connection = True
            return
        if self.path not in ("/file", "/norange/file"):
            self.send_error(404)
            return
        start = 0
        if range_header and self.path == "/file":
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def _clear_requests():
    _Handler.requests.clear()
    SERVED.clear()


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_download_verifies_sha256_and_size(server, tmp_path) -> None:
    seen: list[tuple[int, int | None]] = []
    destination = tmp_path / "sub" / "file.bin"
    result = download(f"{server}/file", destination, sha256=PAYLOAD_SHA, size=len(PAYLOAD),
                      progress=lambda done, total: seen.append((done, total)))
    assert result == destination
    assert destination.read_bytes() == PAYLOAD
    assert sha256_of(destination) == PAYLOAD_SHA
    assert _leftovers(destination.parent) == ["file.bin"]
    assert seen and seen[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_wrong_sha256_leaves_nothing(server, tmp_path) -> None:
    destination = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match="sha256") as info:
        download(f"{server}/file", destination, sha256="0" * 64)
    assert str(destination) in info.value.hint
    assert _leftovers(tmp_path) == []


def test_wrong_size_leaves_nothing(server, tmp_path) -> None:
    destination = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match="bytes"):
        download(f"{server}/file", destination, size=len(PAYLOAD) + 1)
    assert _leftovers(tmp_path) == []


def test_resume_from_partial_file(server, tmp_path) -> None:
    destination = tmp_path / "file.bin"
    half = len(PAYLOAD) // 2
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:half])
    seen: list[tuple[int, int | None]] = []
    download(f"{server}/file", destination, sha256=PAYLOAD_SHA, size=len(PAYLOAD),
             progress=lambda done, total: seen.append((done, total)))
    assert destination.read_bytes() == PAYLOAD
    assert _Handler.requests == [("/file", f"bytes={half}-")]
    assert seen[0][0] > half and seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert _leftovers(tmp_path) == ["file.bin"]


def test_server_ignoring_range_restarts(server, tmp_path) -> None:
    destination = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(b"garbage that must not stay in front")
    download(f"{server}/norange/file", destination, sha256=PAYLOAD_SHA)
    assert destination.read_bytes() == PAYLOAD
    assert _leftovers(tmp_path) == ["file.bin"]


def test_http_error(server, tmp_path) -> None:
    destination = tmp_path / "missing.bin"
    with pytest.raises(DownloadError) as info:
        download(f"{server}/missing", destination)
    assert "/missing" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_unreachable_url_names_the_destination(tmp_path) -> None:
    destination = tmp_path / "weights.pt"
    with pytest.raises(DownloadError) as info:
        download("http://127.0.0.1:9/x", destination, timeout=5)
    assert "http://127.0.0.1:9/x" in str(info.value)
    assert str(destination) in info.value.hint
    assert not destination.exists()


def test_connection_dropped_mid_transfer_is_not_a_complete_file(server, tmp_path) -> None:
    destination = tmp_path / "archive.zip"  # e.g. datasets.esc50 downloads the archive without a hash
    with pytest.raises(DownloadError):
        download(f"{server}/short", destination)
    assert not destination.exists()
    # what arrived stays in .part so the next call can resume it
    assert (tmp_path / "archive.zip.part").read_bytes() == PAYLOAD[: len(PAYLOAD) // 2]


def test_complete_partial_file_is_finished(server, tmp_path) -> None:
    destination = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    download(f"{server}/file", destination, sha256=PAYLOAD_SHA, size=len(PAYLOAD))
    assert destination.read_bytes() == PAYLOAD


# --------------------------------------------------------------------------- verification without a known size


def _zip_bytes(members: dict[str, bytes], stored: bool = True) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


ZIP = _zip_bytes({"top/a.bin": PAYLOAD, "top/b.txt": b"hello"})


def test_cut_short_download_without_length_is_kept_for_resuming(server, tmp_path) -> None:
    """No Content-Length, no size, no hash: a zip cut short is detected by its missing central directory."""
    SERVED["cut.zip"], SERVED["full.zip"] = ZIP[: len(ZIP) // 2], ZIP
    destination = tmp_path / "archive.zip"
    with pytest.raises(DownloadError, match="incomplete") as info:
        download(f"{server}/nolength/cut.zip", destination, progress=lambda *a: None)
    assert "resume" in info.value.hint
    assert not destination.exists()
    assert (tmp_path / "archive.zip.part").read_bytes() == ZIP[: len(ZIP) // 2]
    download(f"{server}/nolength/full.zip", destination, progress=lambda *a: None)  # ignores the range: restarts
    assert destination.read_bytes() == ZIP
    assert _leftovers(tmp_path) == ["archive.zip"]
    assert _Handler.requests[-1] == ("/nolength/full.zip", f"bytes={len(ZIP) // 2}-")


def test_corrupted_zip_is_deleted_not_unpacked(server, tmp_path) -> None:
    corrupted = bytearray(ZIP)
    corrupted[ZIP.index(PAYLOAD[:64]) + 1000] ^= 0xFF  # one flipped bit inside a stored member
    SERVED["bad.zip"] = bytes(corrupted)
    with pytest.raises(DownloadError, match="bad CRC in member top/a.bin") as info:
        download(f"{server}/served/bad.zip", tmp_path / "bad.zip", progress=lambda *a: None)
    assert "deleted" in str(info.value)
    assert _leftovers(tmp_path) == []


def test_error_page_instead_of_archive_is_deleted(server, tmp_path) -> None:
    SERVED["page.zip"] = b"<html><body>rate limited</body></html>"
    with pytest.raises(DownloadError, match="not a zip archive"):
        download(f"{server}/nolength/page.zip", tmp_path / "page.zip", progress=lambda *a: None)
    assert _leftovers(tmp_path) == []


def test_unverifiable_download_is_refused(server, tmp_path) -> None:
    """Unknown format, no length from the server, no size or hash: it cannot be told from a cut-short file."""
    SERVED["data.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match="cannot be verified"):
        download(f"{server}/nolength/data.bin", tmp_path / "data.bin", progress=lambda *a: None)
    assert _leftovers(tmp_path) == []
    # the same file with its size known (or announced by the server) is accepted
    download(f"{server}/nolength/data.bin", tmp_path / "data.bin", size=len(PAYLOAD), progress=lambda *a: None)
    download(f"{server}/served/data.bin", tmp_path / "again.bin", progress=lambda *a: None)
    assert (tmp_path / "data.bin").read_bytes() == (tmp_path / "again.bin").read_bytes() == PAYLOAD


def test_shorter_than_known_size_is_resumable(server, tmp_path) -> None:
    SERVED["data.bin"] = PAYLOAD[:1000]
    with pytest.raises(DownloadError, match="incomplete"):
        download(f"{server}/nolength/data.bin", tmp_path / "data.bin", size=len(PAYLOAD), progress=lambda *a: None)
    assert (tmp_path / "data.bin.part").stat().st_size == 1000
    download(f"{server}/file", tmp_path / "data.bin", size=len(PAYLOAD), sha256=PAYLOAD_SHA,
             progress=lambda *a: None)
    assert _Handler.requests[-1] == ("/file", "bytes=1000-")
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD


def test_md5_is_verified(server, tmp_path) -> None:
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert download(f"{server}/file", tmp_path / "ok.bin", md5=md5, progress=lambda *a: None).read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="md5"):
        download(f"{server}/file", tmp_path / "bad.bin", md5="0" * 32, progress=lambda *a: None)
    assert _leftovers(tmp_path) == ["ok.bin"]


def test_download_archive_uses_the_card(server, tmp_path) -> None:
    info = ArchiveInfo(url=f"{server}/file", file_name="payload.bin", size_bytes=len(PAYLOAD), sha256=PAYLOAD_SHA)
    assert info.expected() == f"{len(PAYLOAD)} bytes, sha256 {PAYLOAD_SHA}"
    path = download_archive(info, tmp_path / "downloads", progress=lambda *a: None)
    assert path == tmp_path / "downloads" / "payload.bin" and path.read_bytes() == PAYLOAD


def test_file_put_there_by_hand_is_used_or_refused(server, tmp_path) -> None:
    destination = tmp_path / "file.bin"
    destination.write_bytes(PAYLOAD)
    assert download(f"{server}/file", destination, sha256=PAYLOAD_SHA, progress=lambda *a: None) == destination
    assert _Handler.requests == []  # verified in place, not downloaded again
    destination.write_bytes(b"something else")
    with pytest.raises(DownloadError, match="already there") as info:
        download(f"{server}/file", destination, sha256=PAYLOAD_SHA, progress=lambda *a: None)
    assert "Delete it" in info.value.hint


def test_offline_error_says_so_and_where_to_put_the_file(tmp_path) -> None:
    destination = tmp_path / "weights.pt"
    with pytest.raises(DownloadError) as info:
        download("http://127.0.0.1:9/weights.pt", destination, sha256=PAYLOAD_SHA, size=123, timeout=5,
                 progress=lambda *a: None)
    message, hint = str(info.value), info.value.hint
    assert "offline" in message and "unreachable" in message and "http://127.0.0.1:9/weights.pt" in message
    assert f"put it at {destination}" in hint and "123 bytes" in hint and PAYLOAD_SHA in hint


# --------------------------------------------------------------------------- checkpoint resolution


@pytest.fixture
def mn04_card():
    from audiobench.registry import MODELS

    return MODELS.entry("mn04").info


def test_explicit_checkpoint_wins(mn04_card, isolated_cache, tmp_path) -> None:
    from audiobench.models.checkpoints import resolve_checkpoint

    cached = isolated_cache / "checkpoints" / mn04_card.checkpoint.file_name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached")
    explicit = tmp_path / "my weights.pt"
    explicit.write_bytes(b"explicit")
    assert resolve_checkpoint(mn04_card, explicit, allow_download=False) == explicit
    with pytest.raises(CheckpointError, match="does not exist"):
        resolve_checkpoint(mn04_card, tmp_path / "absent.pt", allow_download=False)


def test_cached_checkpoint_is_found(mn04_card, isolated_cache, shared_dir) -> None:
    from audiobench.models.checkpoints import resolve_checkpoint

    cached = isolated_cache / "checkpoints" / "mn04_as_mAP_432.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes((shared_dir / "models" / "efficientat" / "mn04_as_mAP_432.pt").read_bytes())
    assert resolve_checkpoint(mn04_card, allow_download=False) == cached


def test_cached_checkpoint_with_wrong_hash_is_refused(mn04_card, isolated_cache) -> None:
    from audiobench.models.checkpoints import resolve_checkpoint

    cached = isolated_cache / "checkpoints" / "mn04_as_mAP_432.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"weights")
    with pytest.raises(CheckpointError, match="sha256") as info:
        resolve_checkpoint(mn04_card, allow_download=False)
    assert "Delete it" in info.value.hint


def test_offline_without_download_explains_what_to_do(mn04_card, isolated_cache) -> None:
    from audiobench.models.checkpoints import resolve_checkpoint

    with pytest.raises(CheckpointError, match="mn04_as_mAP_432.pt") as info:
        resolve_checkpoint(mn04_card, allow_download=False)
    assert mn04_card.checkpoint.url in info.value.hint
    assert mn04_card.checkpoint.url.startswith("https://github.com/fschmid56/EfficientAT/releases/")
    assert str(isolated_cache / "checkpoints" / "mn04_as_mAP_432.pt") in info.value.hint


def _card_with_checkpoint(url: str, sha256: str | None):
    from audiobench.models.cards import CheckpointInfo, ModelCard

    return ModelCard(name="toy", family="test", description="", sample_rate=16000, embedding_dim=4,
                     checkpoint=CheckpointInfo(file_name="toy.pt", url=url, sha256=sha256))


def test_checkpoint_is_downloaded_into_the_cache(server, isolated_cache) -> None:
    from audiobench.models.checkpoints import resolve_checkpoint

    card = _card_with_checkpoint(f"{server}/file", PAYLOAD_SHA)
    path = resolve_checkpoint(card)
    assert path == isolated_cache / "checkpoints" / "toy.pt"
    assert path.read_bytes() == PAYLOAD
    assert resolve_checkpoint(card) == path  # second time from the cache, no request
    assert len(_Handler.requests) == 1


def test_failed_checkpoint_download_is_a_checkpoint_error(server, isolated_cache) -> None:
    from audiobench.models.checkpoints import resolve_checkpoint

    card = _card_with_checkpoint(f"{server}/file", "f" * 64)
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint(card)
    assert f"{server}/file" in info.value.hint
    assert str(isolated_cache / "checkpoints" / "toy.pt") in info.value.hint
    assert _leftovers(isolated_cache / "checkpoints") == []
