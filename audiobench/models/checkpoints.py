"""Find, download and load released checkpoints (an untrusted input: ``weights_only=True``)."""

from __future__ import annotations

import hashlib
import json
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


def _explicit_checkpoint(card: ModelCard, explicit: Path) -> Path:
    """``explicit`` as given, or, for a bare file name that is not a path here, from the checkpoint cache."""
    if explicit.exists():
        return explicit
    looked = [explicit.absolute()]
    if explicit.name == str(explicit):  # a bare name such as "mn04_as_mAP_432.pt"
        cached = cache_subdir("checkpoints") / explicit.name
        if cached.exists():
            return cached
        looked.append(cached)
    raise CheckpointError(f"Checkpoint {explicit} does not exist (looked at {' and '.join(map(str, looked))}).",
                          hint="Check the path given to --checkpoint"
                               + (f", or put the file into the checkpoint cache {cache_subdir('checkpoints')}."
                                  if len(looked) > 1 else "."))


def _by_hand(info: CheckpointInfo, cached: Path) -> str:
    """How to provide the file without a download: its name, its expected size and hash, where it goes."""
    expected = ", ".join(p for p in (f"{info.size_bytes} bytes" if info.size_bytes else "",
                                     f"sha256 {info.sha256}" if info.sha256 else "") if p)
    expected = f" (expected: {expected})" if expected else ""
    if info.url is None:
        return (f"Pass the file {info.file_name} with --checkpoint PATH, or put it at {cached}{expected} "
                f"so it is found without --checkpoint.")
    return f"Download {info.url} and put it at {cached}{expected}, or pass the file with --checkpoint PATH."


def resolve_checkpoint(card: ModelCard, explicit: Path | None = None, allow_download: bool = True,
                       progress: ProgressCallback | None = None) -> Path:
    """Path of the weights for ``card``: ``explicit`` first, then the cache, then a download.

    A bare file name as ``explicit`` that is not a path here is looked up in the checkpoint cache. A card
    whose checkpoint has no public URL (``url`` None) is never downloaded: the error says how to pass it.
    """
    if explicit is not None:
        return _explicit_checkpoint(card, Path(explicit).expanduser())
    info = card.checkpoint
    if info is None:
        raise CheckpointError(f"Model {card.name!r} has no released checkpoint.",
                              hint="Pass a checkpoint with --checkpoint PATH.")
    cached = checkpoint_cache_path(info)
    if cached.is_file():
        if info.sha256 is not None and sha256_of(cached) != info.sha256:
            again = f"download {info.url} anew" if info.url else f"put the right {info.file_name} there"
            raise CheckpointError(f"Cached checkpoint {cached} does not match the release sha256 {info.sha256}.",
                                  hint=f"Delete it and run again to {again}.")
        return cached
    if info.url is None:
        raise CheckpointError(f"No public download URL exists for checkpoint {info.file_name} of {card.name!r}, "
                              f"and it is not in the cache.", hint=_by_hand(info, cached))
    if not allow_download:
        raise CheckpointError(f"Checkpoint {info.file_name} for {card.name!r} is not in the cache.",
                              hint=_by_hand(info, cached))
    try:
        return download(info.url, cached, sha256=info.sha256, size=info.size_bytes, progress=progress)
    except DownloadError as error:
        raise CheckpointError(
            f"Checkpoint {info.file_name} for {card.name!r} is not available offline and could not be "
            f"downloaded ({error}).",
            hint=_by_hand(info, cached),
        ) from error


def weight_files(directory: Path) -> list[Path]:
    """Weights files of a Hugging Face ``save_pretrained`` directory (safetensors preferred, shards in order)."""
    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if (directory / single).is_file():
            return [directory / single]
        if (directory / index).is_file():
            weight_map = json.loads((directory / index).read_text())["weight_map"]
            return [directory / name for name in sorted(set(weight_map.values()))]
    raise CheckpointError(f"{directory} holds no model.safetensors or pytorch_model.bin.",
                          hint="Pass a directory written by save_pretrained, or the weights file itself.")


def _read_file(path: Path) -> object:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch and safetensors raise many types for corrupt or unsafe files
        first_line = (str(error).splitlines() or [""])[0][:200]
        raise CheckpointError(f"Checkpoint {path} cannot be read safely ({type(error).__name__}: {first_line}).",
                              hint="Check that the file is a complete PyTorch or safetensors checkpoint.") from error


def read_state_dict(path: Path, key_prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint: a file loaded with ``weights_only=True`` (or safetensors), or a directory.

    Accepts a plain state_dict or a wrapper with a ``state_dict`` entry (e.g. PyTorch Lightning);
    with ``key_prefix`` only keys under that prefix are kept, with the prefix removed.
    """
    path = Path(path)
    files = weight_files(path) if path.is_dir() else [path]
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        raw = _read_file(file)
        if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
            raw = raw["state_dict"]
        if not isinstance(raw, Mapping):
            raise CheckpointError(f"Checkpoint {file} holds a {type(raw).__name__}, not a state_dict.")
        tensors.update({k: v for k, v in raw.items() if isinstance(v, torch.Tensor)})
    if key_prefix:
        tensors = {k[len(key_prefix):]: v for k, v in tensors.items() if k.startswith(key_prefix)}
    return tensors


def checkpoint_sha256(path: Path) -> str:
    """sha256 of a checkpoint file; for a directory, of its single weights file (or of the shard hashes)."""
    path = Path(path)
    if not path.is_dir():
        return sha256_of(path)
    hashes = [sha256_of(f) for f in weight_files(path)]
    return hashes[0] if len(hashes) == 1 else hashlib.sha256("".join(hashes).encode()).hexdigest()


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


def load_weights(network: nn.Module, path: Path, key_prefix: str = "", sha256: str | None = None) -> str:
    """Load ``path`` into ``network`` with ``strict=True``; returns the file's sha256.

    ``sha256``: the hash the caller already verified the file against (it is then not computed again).
    """
    state_dict = read_state_dict(path, key_prefix)
    adapt = getattr(network, "adapt_checkpoint", None)  # e.g. the legacy key names of torchvision's DenseNet files
    if callable(adapt):
        state_dict = adapt(state_dict)
    problem = describe_mismatch(network, state_dict)
    if problem:
        raise CheckpointError(f"Checkpoint {path} does not fit the network: {problem}.",
                              hint="Check that the checkpoint belongs to the model named with --model.")
    network.load_state_dict(state_dict, strict=True)
    return sha256 or checkpoint_sha256(path)
