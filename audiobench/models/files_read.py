"""Which files a piece of foreign code reads: the weights a HEAR module loads by itself.

A HEAR module's ``load_model`` finds its own weights (bundled in the package, downloaded into a hub
cache, ...), so audiobench cannot know them from a card. Python's audit hooks report every ``open``
call; while :func:`files_read_during` runs a function, the regular files it opens for reading are
collected, so their sha256 can enter the embedding cache key. Python sources and compiled extension
modules are left out (the package's name, version and installed-file hashes cover them).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, TypeVar

T = TypeVar("T")

CODE_SUFFIXES = (".py", ".pyc", ".pyi", ".so", ".pyd", ".pth", ".dist-info")
SYSTEM_ROOTS = ("/proc", "/sys", "/dev")

_collecting: list[set[str]] = []
_lock = threading.Lock()
_installed = False


def _read_only(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str):
        return not any(c in mode for c in "wax+")
    if isinstance(flags, int):
        return flags & (os.O_WRONLY | os.O_RDWR) == 0
    return True


def _hook(event: str, args: tuple) -> None:
    if event != "open" or not _collecting:
        return
    path, mode, flags = (tuple(args) + (None, None, None))[:3]
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str) or not _read_only(mode, flags):
        return
    for collected in _collecting:
        collected.add(path)


def _install() -> None:
    global _installed
    with _lock:
        if not _installed:
            sys.addaudithook(_hook)  # audit hooks cannot be removed: this one is idle unless collecting
            _installed = True


def _is_data_file(path: Path) -> bool:
    text = str(path)
    if text.startswith(SYSTEM_ROOTS) or path.suffix in CODE_SUFFIXES or ".dist-info" in text:
        return False
    return path.is_file()


def files_read_during(function: Callable[[], T]) -> tuple[T, list[Path]]:
    """Call ``function`` and return its result and the data files it opened for reading (sorted)."""
    _install()
    collected: set[str] = set()
    _collecting.append(collected)
    try:
        result = function()
    finally:
        _collecting.remove(collected)
    files = sorted({Path(p).resolve() for p in collected if _is_data_file(Path(p))})
    return result, files
