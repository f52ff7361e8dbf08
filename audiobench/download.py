"""Resumable, verified downloads that never leave a half-written file at the destination."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from audiobench.errors import AudiobenchError

ProgressCallback = Callable[[int, int | None], None]  # (bytes so far, total or None)
CHUNK = 1 << 20


class DownloadError(AudiobenchError):
    """A download that failed (offline, HTTP error, size or hash mismatch)."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, destination: Path, sha256: str | None = None, size: int | None = None,
             progress: ProgressCallback | None = None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``destination``.

    Data goes to ``destination + ".part"`` first; an interrupted download resumes from there with an
    HTTP range request. Only a complete file whose size and sha256 match (when known) is moved to
    ``destination``; a mismatching one is deleted.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "audiobench"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(
            f"Could not download {url} ({getattr(error, 'reason', error)}).",
            hint=f"Check the network, or download the file yourself and put it at {destination}.",
        ) from error
    with response:
        if offset and response.status != 206:  # server ignored the range: start over
            offset = 0
        total = response.headers.get("Content-Length")
        total_bytes = int(total) + offset if total is not None else size
        with open(partial, "ab" if offset else "wb") as handle:
            done = offset
            for block in iter(lambda: response.read(CHUNK), b""):
                handle.write(block)
                done += len(block)
                if progress is not None:
                    progress(done, total_bytes)
    _verify(partial, url, destination, sha256, size)
    os.replace(partial, destination)
    return destination


def _verify(partial: Path, url: str, destination: Path, sha256: str | None, size: int | None) -> None:
    actual_size = partial.stat().st_size
    if size is not None and actual_size != size:
        partial.unlink()
        raise DownloadError(f"Downloaded {url} has {actual_size} bytes, expected {size}.",
                            hint=f"Try again, or put a verified copy at {destination}.")
    if sha256 is not None and sha256_of(partial) != sha256:
        partial.unlink()
        raise DownloadError(f"Downloaded {url} does not match its sha256 {sha256}.",
                            hint=f"Try again, or put a verified copy at {destination}.")
