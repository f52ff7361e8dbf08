"""Training-state checkpoints: everything a fine-tuning run needs to continue exactly where it stopped.

One file per split, rewritten atomically after every epoch: the network, optimizer, scheduler and grad-scaler
states, every random-number state (torch CPU and CUDA, numpy, Python, the augmentation generators), the epoch
history, the best model so far, and the run's configuration, which a resumed run must match. The file holds
only tensors and plain values, so it is read back with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiobench.atomic import atomic_write_bytes
from audiobench.errors import AudiobenchError

STATE_FORMAT = "audiobench-finetune-state-1"


def rng_state() -> dict[str, Any]:
    """The global random states of torch (CPU and every CUDA device), numpy and Python."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
            "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(position), int(has_gauss),
                      float(gauss)],
            "python": random.getstate()}


def restore_rng(state: dict[str, Any]) -> None:
    """Set the global random states saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate(state["python"])


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (readers see the previous checkpoint or this one, never a part)."""
    buffer = io.BytesIO()
    torch.save({"format": STATE_FORMAT, **state}, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def load_state(path: Path) -> dict[str, Any]:
    """A checkpoint written by :func:`save_state` (AudiobenchError if it is unreadable or of another kind)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt files
        raise AudiobenchError(f"Fine-tuning checkpoint {path} cannot be read ({type(error).__name__}: {error}).",
                              hint="Delete it and run again without --resume.") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise AudiobenchError(f"{path} is not an audiobench fine-tuning checkpoint.",
                              hint="Delete it and run again without --resume.")
    return state


def differences(saved: Any, current: Any, prefix: str = "") -> list[str]:
    """Dotted names of the entries where two (nested) configurations differ."""
    if isinstance(saved, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(saved) | set(current), key=str):
            found += differences(saved.get(key), current.get(key), f"{prefix}{key}.")
        return found
    return [] if saved == current else [f"{prefix[:-1]} ({saved!r} in the checkpoint, {current!r} now)"]


def check_same_config(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """A resumed run must have the configuration of the checkpoint it continues."""
    changed = differences(saved, current)
    if changed:
        shown = "; ".join(changed[:5]) + (f"; +{len(changed) - 5} more" if len(changed) > 5 else "")
        raise AudiobenchError(f"--resume: the checkpoint {path} was written with another configuration: {shown}.",
                              hint="Resume with the same recipe, options and data, or run without --resume to "
                                   "start again.")
