"""Choose the compute device: ``auto`` takes a GPU when there is one."""

from __future__ import annotations

from audiobench.errors import AudiobenchError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(requested: str = "auto") -> str:
    """``"cpu"`` or ``"cuda"`` (or ``"cuda:N"``) for ``requested``; asking for a missing GPU is an error."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise AudiobenchError(f"Device {requested!r} was requested but no CUDA GPU is available.",
                              hint="Use --device cpu or --device auto.")
    if requested != "cpu" and not requested.startswith("cuda"):
        raise AudiobenchError(f"Unknown device {requested!r}.", hint=f"Use one of {', '.join(DEVICE_CHOICES)}.")
    return requested
