"""Where the read-only reference material lives for tests (``../shared`` beside the checkout)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def require(path: Path) -> Path:
    """``path`` if it exists, else skip the test with the missing path as the reason."""
    if not path.exists():
        pytest.skip(f"shared reference file not found: {path}")
    return path
