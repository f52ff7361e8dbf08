"""The cache of a model's per-clip outputs, opened from the model's fingerprint alone (torch-free)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audiobench.cache import EmbeddingCache
from audiobench.errors import AudiobenchError
from audiobench.input_pipeline import input_pipeline

#: ``--precision`` choices: fp32 runs without autocast, the others under torch.autocast with that dtype.
PRECISION_NAMES = ("fp32", "bf16", "fp16")


def precision_key(precision: str) -> dict[str, str]:
    """The cache-key part of a precision (empty for fp32, so fp32 keys are those of earlier versions)."""
    if precision not in PRECISION_NAMES:
        raise AudiobenchError(f"Unknown precision {precision!r}.", hint=f"Use one of {', '.join(PRECISION_NAMES)}.")
    return {} if precision == "fp32" else {"precision": f"autocast {precision}"}


def cache_for_fingerprint(fingerprint: dict[str, Any], sample_rate: int, size: int, root: Path,
                          output: str = "embedding", precision: str = "fp32") -> EmbeddingCache:
    """The output cache of the model with ``fingerprint``: keyed also by the input pipeline, the output kind
    and the precision; every entry must be a vector of ``size`` values."""
    extra = {} if output == "embedding" else {"output": output}
    return EmbeddingCache(root, {**fingerprint, "input": input_pipeline(sample_rate), **extra,
                                 **precision_key(precision)}, shape=(size,))
