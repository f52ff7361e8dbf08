"""Find, download and load released checkpoints (an untrusted input: ``weights_only=True``)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from audiobench.cachedir import cache_subdir
from audiobench.download import DownloadError, ProgressCallback, download, sha256_of
from audiobench.errors import CheckpointError
from audiobench.models.cards import CheckpointInfo, ModelCard


def checkpoint_cache_path(info: CheckpointInfo) -> Path:
    """Where the cache keeps the release file ``info.file_name``."""
    return cache_subdir("checkpoints") / info.file_name


def resolve_checkpoint(card: ModelCard, explicit: Path | None = None, allow_download: bool = True,
                       progress: ProgressCallback | None = None) -> Path:
    """Path of the weights for ``card``: ``explicit`` first, then the cache, then a download."""
    if explicit is not None:
        explicit = Path(explicit).expanduser()
        if not explicit.is_file():
            raise CheckpointError(f"Checkpoint file {explicit} does not exist.",
                                  hint="Check the path given to --checkpoint.")
        return explicit
    info = card.checkpoint
    if info is None:
        raise CheckpointError(f"Model {card.name!r} has no released checkpoint.",
                              hint="Pass a checkpoint with --checkpoint PATH.")
    cached = checkpoint_cache_path(info)
    if cached.is_file():
        return cached
    if not allow_download:
        raise CheckpointError(f"Checkpoint {info.file_name} for {card.name!r} is not in the cache.",
                              hint=f"Download {info.url} and put it at {cached}, or pass --checkpoint PATH.")
    try:
        return download(info.url, cached, sha256=info.sha256, size=info.size_bytes, progress=progress)
    except DownloadError as error:
        raise CheckpointError(
            f"Checkpoint {info.file_name} for {card.name!r} is not available offline and could not be "
            f"downloaded ({error}).",
            hint=f"Download {info.url} and put it at {cached}, or pass --checkpoint PATH.",
        ) from error


def read_state_dict(path: Path, key_prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, loaded with ``weights_only=True``.

    Accepts a plain state_dict or a wrapper with a ``state_dict`` entry (e.g. PyTorch Lightning);
    with ``key_prefix`` only keys under that prefix are kept, with the prefix removed.
    """
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or unsafe files
        raise CheckpointError(f"Checkpoint {path} cannot be read safely ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:200]}).",
                              hint="Check that the file is a complete PyTorch checkpoint.") from error
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"Checkpoint {path} holds a {type(raw).__name__}, not a state_dict.")
    tensors = {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if key_prefix:
        tensors = {k[len(key_prefix):]: v for k, v in tensors.items() if k.startswith(key_prefix)}
    return tensors


def describe_mismatch(network: nn.Module, state_dict: Mapping[str, torch.Tensor], limit: int = 5) -> str | None:
    """A sentence naming missing, unexpected and wrongly shaped keys, or None when all fit."""
    expected = network.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
             for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("shape mismatches (checkpoint vs model)", wrong)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
    return "; ".join(parts) or None


def load_weights(network: nn.Module, path: Path, key_prefix: str = "") -> str:
    """Load ``path`` into ``network`` with ``strict=True``; returns the file's sha256."""
    state_dict = read_state_dict(path, key_prefix)
    problem = describe_mismatch(network, state_dict)
    if problem:
        raise CheckpointError(f"Checkpoint {path} does not fit the network: {problem}.",
                              hint="Check that the checkpoint belongs to the model named with --model.")
    network.load_state_dict(state_dict, strict=True)
    return sha256_of(path)
