"""Structural checks of downloaded files, for files whose size and hash nobody publishes.

A zip (and a PyTorch ``.pt``/``.pth``/``.ckpt``, which is a zip) must have a readable central directory
and no bad CRC, a gzip stream must end with its end-of-stream marker and CRC, a tar must end with its
end-of-archive blocks, a safetensors file must be exactly as long as its header says. Each check says
whether a problem looks like a file cut short (worth resuming) or a damaged one.
"""

from __future__ import annotations

import gzip
import json
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable, NamedTuple

CHUNK = 1 << 20


class FormatCheck(NamedTuple):
    """Result of :func:`check_format`: ``checked`` False when the format has no check."""

    checked: bool
    problem: str | None = None  # None: the file passed (or was not checked)
    truncated: bool = False  # the problem looks like a file cut short (worth resuming)


def _check_zip(path: Path) -> FormatCheck:
    """Central directory readable and every member's CRC correct (``ZipFile.testzip``)."""
    with open(path, "rb") as handle:
        if handle.read(4) != b"PK\x03\x04":
            return FormatCheck(True, "is not a zip archive (it does not start with a zip header)")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as error:  # starts like a zip, but its central directory is missing: cut short
        return FormatCheck(True, f"is not a complete zip archive ({error})", truncated=True)
    except (OSError, EOFError, zlib.error, NotImplementedError) as error:
        return FormatCheck(True, f"is a damaged zip archive ({type(error).__name__}: {error})")
    if bad is not None:
        return FormatCheck(True, f"is a damaged zip archive (bad CRC in member {bad})")
    return FormatCheck(True)


def _check_torch(path: Path) -> FormatCheck:
    """A PyTorch file: the zip format of ``torch.save`` (>= 1.6) is checked; the legacy format cannot be."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head == b"PK\x03\x04":
        return _check_zip(path)
    if head[:1] == b"\x80":  # legacy (pickle-based) torch.save format: no end marker to check
        return FormatCheck(False)
    return FormatCheck(True, "is not a PyTorch checkpoint (neither a zip nor a pickle)")


def _check_gzip(path: Path) -> FormatCheck:
    """The gzip stream decompresses to its end-of-stream marker, CRC and length included."""
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(CHUNK):
                pass
    except EOFError as error:
        return FormatCheck(True, f"is a gzip stream that ends early ({error})", truncated=True)
    except (OSError, zlib.error) as error:
        return FormatCheck(True, f"is a damaged gzip stream ({type(error).__name__}: {error})")
    return FormatCheck(True)


def _check_tar(path: Path) -> FormatCheck:
    """Every member header readable, member data present, and the end-of-archive blocks there."""
    try:
        with tarfile.open(path, "r:*") as archive:
            archive.getmembers()
            end = archive.offset
    except tarfile.ReadError as error:
        truncated = "unexpected end" in str(error) or "empty" in str(error)
        return FormatCheck(True, f"is not a complete tar archive ({error})", truncated=truncated)
    except (OSError, EOFError, zlib.error) as error:
        return FormatCheck(True, f"is a damaged tar archive ({type(error).__name__}: {error})", truncated=True)
    opener = gzip.open if path.name.endswith((".gz", ".tgz")) else open
    with opener(path, "rb") as stream:
        stream.seek(end)
        marker = stream.read(2 * tarfile.BLOCKSIZE)
    if len(marker) < 2 * tarfile.BLOCKSIZE or marker.strip(b"\0"):
        return FormatCheck(True, "is a tar archive without its end-of-archive blocks", truncated=True)
    return FormatCheck(True)


def _check_safetensors(path: Path) -> FormatCheck:
    """The JSON header is complete and the file is exactly as long as its tensors' offsets say."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if length < 0 or 8 + length > size:
            return FormatCheck(True, "is a safetensors file whose header is cut short", truncated=True)
        try:
            header = json.loads(handle.read(length))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
            return FormatCheck(True, f"is not a safetensors file (unreadable header: {error})")
    expected = 8 + length + end
    if size != expected:
        return FormatCheck(True, f"is a safetensors file of {size} bytes whose header says {expected}",
                           truncated=size < expected)
    return FormatCheck(True)


def _check_gzip_tar(path: Path) -> FormatCheck:
    first = _check_gzip(path)
    return first if first.problem is not None else _check_tar(path)


# file name ending -> structural check (longest ending first)
FORMAT_CHECKS: dict[str, Callable[[Path], FormatCheck]] = {
    ".tar.gz": _check_gzip_tar, ".tgz": _check_gzip_tar, ".gz": _check_gzip, ".tar": _check_tar,
    ".zip": _check_zip, ".pt": _check_torch, ".pth": _check_torch, ".ckpt": _check_torch,
    ".safetensors": _check_safetensors,
}


def check_format(path: Path, name: str | None = None) -> FormatCheck:
    """Structural check of ``path`` chosen by the ending of ``name`` (default: the path's own name)."""
    name = (name or Path(path).name).lower()
    for ending, check in FORMAT_CHECKS.items():
        if name.endswith(ending):
            return check(Path(path))
    return FormatCheck(False)
