"""Resumable, verified downloads that never leave a half-written or unverified file at the destination.

What "verified" means depends on what is known about the file (see :class:`ArchiveInfo`):

* a pinned sha256 (or md5): the content must match it;
* a pinned size: the byte count must match it (a shorter file is resumable, a longer one is deleted);
* neither hash: the file must pass the structural check of its format
  (:func:`audiobench.file_formats.check_format`: zip/torch CRCs, gzip and tar end markers, safetensors length);
* a file of a format without such a check, with no size, no hash and no ``Content-Length`` from the
  server, cannot be told apart from a cut-short one and is refused.

Data goes to ``<destination>.part`` first; only a verified file is moved to ``destination``.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

from audiobench.errors import AudiobenchError
from audiobench.file_formats import FormatCheck, check_format  # noqa: F401 - FormatCheck re-exported

ProgressCallback = Callable[[int, int | None], None]  # (bytes so far, total or None)
CHUNK = 1 << 20


class DownloadError(AudiobenchError):
    """A download that failed (offline, HTTP error, size or hash mismatch, incomplete or corrupt file)."""


@dataclass(frozen=True)
class ArchiveInfo:
    """The card of a file the project downloads: where from, under which name, and what pins its content.

    ``size_bytes``, ``sha256`` and ``md5`` are None when no trustworthy value is known (never guessed);
    ``verification`` says in words what is checked for this file.
    """

    url: str
    file_name: str
    size_bytes: int | None = None
    sha256: str | None = None
    md5: str | None = None
    verification: str = ""

    def expected(self) -> str:
        """``"<size> bytes, sha256 <hex>"`` (what is known of the file), or ``""``."""
        parts = [f"{self.size_bytes} bytes" if self.size_bytes is not None else "",
                 f"sha256 {self.sha256}" if self.sha256 else "", f"md5 {self.md5}" if self.md5 else ""]
        return ", ".join(p for p in parts if p)


class _Problem(NamedTuple):
    text: str
    resumable: bool


@contextlib.contextmanager
def _progress_bar(name: str) -> Iterator[ProgressCallback]:
    """A rich download bar on stderr, as a ``(bytes so far, total)`` callback."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn(f"download {name}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(name, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _digest_of(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    return _digest_of(path, "sha256")


def md5_of(path: Path) -> str:
    """Hex md5 of a file, read in chunks (only to compare with checksums published as md5)."""
    return _digest_of(path, "md5")


# --------------------------------------------------------------------------- download


def download_archive(info: ArchiveInfo, directory: Path, progress: ProgressCallback | None = None,
                     timeout: float = 30.0) -> Path:
    """Download the file of ``info`` to ``directory / info.file_name``, verified as :func:`download` does."""
    return download(info.url, Path(directory) / info.file_name, sha256=info.sha256, size=info.size_bytes,
                    progress=progress, timeout=timeout, md5=info.md5)


def download(url: str, destination: Path, sha256: str | None = None, size: int | None = None,
             progress: ProgressCallback | None = None, timeout: float = 30.0, md5: str | None = None) -> Path:
    """Download ``url`` to ``destination``, with a progress bar on stderr unless ``progress`` is given.

    A file already at ``destination`` is verified and returned (so one put there by hand is used). Data
    goes to ``destination + ".part"`` first; an interrupted download raises :class:`DownloadError` and
    keeps the ``.part``, which the next call resumes with an HTTP range request. Only a file that verifies
    (see the module docstring) is moved to ``destination``; one that is too short keeps its ``.part``
    for resuming, any other failing one is deleted.
    """
    info = ArchiveInfo(url=url, file_name=Path(destination).name, size_bytes=size, sha256=sha256, md5=md5)
    destination = Path(destination)
    if destination.is_file():
        return _existing_destination(info, destination)
    if progress is None:
        with _progress_bar(destination.name) as bar:
            return download(url, destination, sha256, size, bar, timeout, md5)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    offset = partial.stat().st_size if partial.exists() else 0
    if offset and size is not None and offset >= size:  # nothing left to fetch: the .part is complete or bad
        if _finish_existing(partial, destination, info, size):
            return destination
        offset = 0
    try:
        response = _open(info, destination, offset, timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not offset:
            raise _http_error(info, destination, error) from error
        # Range not satisfiable: the server has nothing past the .part, which is complete or longer than the file.
        known = size if size is not None else _content_range_total(error.headers.get("Content-Range"))
        error.close()
        if _finish_existing(partial, destination, info, known):
            return destination
        offset = 0
        try:
            response = _open(info, destination, 0, timeout)
        except urllib.error.HTTPError as again:
            raise _http_error(info, destination, again) from again
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
                hint=f"Run the command again to resume from {partial}, or {_manual(info, destination)}.",
            ) from error
    if announced is not None and done != announced:
        if done > announced:
            partial.unlink(missing_ok=True)
        raise DownloadError(
            f"Download of {url} ended after {done} of {announced} bytes (the connection was closed early).",
            hint=f"Run the command again to resume from {partial}." if done < announced
            else f"Try again, or {_manual(info, destination)}.",
        )
    _accept(partial, destination, info, announced)
    return destination


def _manual(info: ArchiveInfo, destination: Path) -> str:
    """``download <url> by hand and put it at <destination> (<size>, <sha256>)``: the offline way."""
    expected = info.expected()
    return f"download {info.url} by hand and put it at {destination}" + (f" (expected: {expected})" if expected else "")


def _open(info: ArchiveInfo, destination: Path, offset: int, timeout: float):
    """urlopen the file (from byte ``offset``); HTTP errors propagate, other failures become DownloadError."""
    request = urllib.request.Request(info.url, headers={"User-Agent": "audiobench"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        host = urllib.parse.urlsplit(info.url).netloc or info.url
        raise DownloadError(
            f"Could not reach {host} to download {info.url}: this machine looks offline or the host is "
            f"unreachable ({reason}).",
            hint=f"Check the network connection and run again, or {_manual(info, destination)}.",
        ) from error


def _http_error(info: ArchiveInfo, destination: Path, error: urllib.error.HTTPError) -> DownloadError:
    return DownloadError(f"Could not download {info.url} (HTTP {error.code} {error.reason}).",
                         hint=f"Check the URL and the network, or {_manual(info, destination)}.")


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


def _problem(path: Path, info: ArchiveInfo, announced: int | None, name: str) -> _Problem | None:
    """Why ``path`` is not the expected file (None when it verifies; see the module docstring).

    ``announced``: the length the server announced and delivered (None when it announced none); only a
    file whose length nobody vouched for can be a cut-short one worth resuming.
    """
    actual = path.stat().st_size
    if info.size_bytes is not None and actual != info.size_bytes:
        return _Problem(f"has {actual} bytes, expected {info.size_bytes}",
                        resumable=announced is None and actual < info.size_bytes)
    if info.sha256 and sha256_of(path) != info.sha256:
        return _Problem(f"does not match its sha256 {info.sha256}", resumable=False)
    if info.md5 and md5_of(path) != info.md5:
        return _Problem(f"does not match its md5 {info.md5}", resumable=False)
    if info.sha256 or info.md5:
        return None  # the content is pinned
    check = check_format(path, name)
    if check.problem is not None:
        return _Problem(check.problem, resumable=check.truncated and announced is None and info.size_bytes is None)
    if not check.checked and info.size_bytes is None and announced is None:
        return _Problem("cannot be verified: the server announced no length, and no size, hash or format check "
                        "is known for this file", resumable=False)
    return None


def _finish_existing(partial: Path, destination: Path, info: ArchiveInfo, known_size: int | None) -> bool:
    """Move an already complete ``.part`` into place if it verifies; delete it (and return False) if not."""
    checked = ArchiveInfo(info.url, info.file_name, known_size, info.sha256, info.md5)
    if _problem(partial, checked, known_size, destination.name) is None:
        os.replace(partial, destination)
        return True
    partial.unlink(missing_ok=True)
    return False


def _accept(partial: Path, destination: Path, info: ArchiveInfo, announced: int | None) -> None:
    """Move the finished ``.part`` to ``destination`` if it verifies; else keep it (too short) or delete it."""
    problem = _problem(partial, info, announced, destination.name)
    if problem is None:
        os.replace(partial, destination)
        return
    if problem.resumable:
        raise DownloadError(f"Download of {info.url} is incomplete: it {problem.text}; the partial file "
                            f"{partial} is kept.",
                            hint=f"Run the command again to resume it, or {_manual(info, destination)}.")
    partial.unlink(missing_ok=True)
    raise DownloadError(f"Downloaded {info.url} {problem.text}; the file was deleted.",
                        hint=f"Try again, or {_manual(info, destination)}.")


def _existing_destination(info: ArchiveInfo, destination: Path) -> Path:
    """A file already at ``destination`` (e.g. put there by hand): used when it verifies, refused if not."""
    problem = _problem(destination, info, destination.stat().st_size, destination.name)
    if problem is not None:
        raise DownloadError(f"{destination} is already there but {problem.text}.",
                            hint=f"Delete it and run again to download {info.url}, or replace it with a "
                                 f"verified copy.")
    return destination


def unpack_zip(archive: Path, target: Path, verify: Callable[[Path], None]) -> Path:
    """Unpack ``archive`` and move its top folder to ``target`` only after ``verify(folder)`` returned.

    The archive is unpacked next to ``target`` (``<target>.unpacking``), which is removed whatever happens;
    ``verify`` raises (an :class:`AudiobenchError`) when the unpacked tree is not what was expected, and
    then nothing is moved into place.
    """
    staging = target.with_name(target.name + ".unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        try:
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(staging)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as error:
            raise DownloadError(f"Archive {archive} cannot be unpacked ({type(error).__name__}: {error}).",
                                hint=f"Delete {archive} and run again to download it anew.") from error
        entries = list(staging.iterdir())
        tree = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        verify(tree)
        tree.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
