"""audiobench: a benchmark and evaluation suite for efficient audio models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from audiobench.models.loading import load_model

__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> Any:
    # Lazy: `import audiobench` (and `audiobench list`) must not import torch.
    if name == "load_model":
        from audiobench.models.loading import load_model

        return load_model
    raise AttributeError(f"module 'audiobench' has no attribute {name!r}")
