"""Where the read-only reference material lives for tests (``../shared`` beside the checkout)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MN04 = SHARED / "models" / "efficientat" / "mn04_as_mAP_432.pt"  # the real released mn04_as checkpoint
ESC50 = SHARED / "data" / "esc50"  # the real partial ESC-50 copy
METRO_WAV = SHARED / "data" / "tau22" / "metro_station-paris.wav"


def require(path: Path) -> Path:
    """``path`` if it exists, else skip the test with the missing path as the reason."""
    if not path.exists():
        pytest.skip(f"shared reference file not found: {path}")
    return path


def file_sha256(path: Path) -> str:
    """sha256 of a reference file, computed here (independently of audiobench's own hashing)."""
    return hashlib.sha256(require(path).read_bytes()).hexdigest()
