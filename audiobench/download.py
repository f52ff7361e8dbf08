"""Resumable, verified downloads that never leave a half-written file at the destination."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

from audiobench.errors import AudiobenchError

ProgressCallback = Callable[[int, int | None], None]  # (bytes so far, total or None)
CHUNK = 1 << 20


class DownloadError(AudiobenchError):
    """A download that failed (offline, HTTP error, size or hash mismatch)."""


@contextlib.contextmanager
def _progress_bar(name: str) -> Iterator[ProgressCallback]:
    """A rich download bar on stderr, as a ``(bytes so far, total)`` callback."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn(f"download {name}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(name, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, destination: Path, sha256: str | None = None, size: int | None = None,
             progress: ProgressCallback | None = None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``destination``, with a progress bar on stderr unless ``progress`` is given.

    Data goes to ``destination + ".part"`` first; an interrupted download (fewer bytes than the server
    announced) raises :class:`DownloadError` and keeps the ``.part``, which the next call resumes with an
    HTTP range request. A ``.part`` that is already complete is verified and moved into place. Only a
    complete file whose size and sha256 match (when known) is moved to ``destination``; a mismatching one
    is deleted.
    """
    if progress is None:
        with _progress_bar(destination.name) as bar:
            return download(url, destination, sha256, size, bar, timeout)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    offset = partial.stat().st_size if partial.exists() else 0
    if offset and size is not None and offset >= size:  # nothing left to fetch: the .part is complete or bad
        if _finish_existing(partial, destination, sha256, size):
            return destination
        offset = 0
    try:
        response = _open(url, destination, offset, timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not offset:
            raise _http_error(url, destination, error) from error
        # Range not satisfiable: the server has nothing past the .part, which is complete or longer than the file.
        known = size if size is not None else _content_range_total(error.headers.get("Content-Range"))
        error.close()
        if (known is not None or sha256 is not None) and _finish_existing(partial, destination, sha256, known):
            return destination
        partial.unlink(missing_ok=True)
        offset = 0
        try:
            response = _open(url, destination, 0, timeout)
        except urllib.error.HTTPError as again:
            raise _http_error(url, destination, again) from again
    with response:
        if offset and (response.status != 206 or _content_range_start(response.headers.get("Content-Range"))
                       not in (None, offset)):
            offset = 0  # server ignored the range (or answered another one): start over
        length = response.headers.get("Content-Length")
        announced = int(length) + offset if length is not None and length.strip().isdigit() else None
        total_bytes = announced if announced is not None else size
        done = offset
        try:
            with open(partial, "ab" if offset else "wb") as handle:
                for block in iter(lambda: response.read(CHUNK), b""):
                    handle.write(block)
                    done += len(block)
                    progress(done, total_bytes)
        except (OSError, http.client.HTTPException) as error:  # connection reset, timeout, ...
            raise DownloadError(
                f"Download of {url} was interrupted after {done} of {total_bytes or 'unknown'} bytes ({error}).",
                hint=f"Run the command again to resume from {partial}.",
            ) from error
    if announced is not None and done != announced:
        if done > announced:
            partial.unlink(missing_ok=True)
        raise DownloadError(
            f"Download of {url} ended after {done} of {announced} bytes (the connection was closed early).",
            hint=f"Run the command again to resume from {partial}." if done < announced
            else f"Try again, or put a verified copy at {destination}.",
        )
    _verify(partial, url, destination, sha256, size)
    os.replace(partial, destination)
    return destination


def _open(url: str, destination: Path, offset: int, timeout: float):
    """urlopen ``url`` (from byte ``offset``); HTTP errors propagate, other failures become DownloadError."""
    request = urllib.request.Request(url, headers={"User-Agent": "audiobench"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise DownloadError(
            f"Could not download {url} ({getattr(error, 'reason', error)}).",
            hint=f"Check the network, or download the file yourself and put it at {destination}.",
        ) from error


def _http_error(url: str, destination: Path, error: urllib.error.HTTPError) -> DownloadError:
    return DownloadError(
        f"Could not download {url} ({error.reason}).",
        hint=f"Check the network, or download the file yourself and put it at {destination}.",
    )


def _content_range_total(value: str | None) -> int | None:
    """N of a ``Content-Range: bytes */N`` (or ``bytes a-b/N``) header; None when absent or unknown."""
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _content_range_start(value: str | None) -> int | None:
    """a of a ``Content-Range: bytes a-b/N`` header; None when absent or unparsable."""
    if not value:
        return None
    first = value.strip().removeprefix("bytes").strip().split("-", 1)[0]
    return int(first) if first.isdigit() else None


def _finish_existing(partial: Path, destination: Path, sha256: str | None, size: int | None) -> bool:
    """Move an already complete ``.part`` into place if it verifies; delete it (and return False) if not."""
    if _problem(partial, sha256, size) is None:
        os.replace(partial, destination)
        return True
    partial.unlink(missing_ok=True)
    return False


def _problem(partial: Path, sha256: str | None, size: int | None) -> str | None:
    """Why ``partial`` is not the expected file (None when its size and sha256 match what is known)."""
    actual_size = partial.stat().st_size
    if size is not None and actual_size != size:
        return f"has {actual_size} bytes, expected {size}"
    if sha256 is not None and sha256_of(partial) != sha256:
        return f"does not match its sha256 {sha256}"
    return None


def _verify(partial: Path, url: str, destination: Path, sha256: str | None, size: int | None) -> None:
    problem = _problem(partial, sha256, size)
    if problem is not None:
        partial.unlink()
        raise DownloadError(f"Downloaded {url} {problem}.",
                            hint=f"Try again, or put a verified copy at {destination}.")
