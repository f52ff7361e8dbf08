"""What a run needs to know about a model when it computes nothing, without building the model.

Building a model means importing torch and reading its weights; a re-run whose embeddings are all cached
needs neither. After a model is built once, its descriptor (fingerprint, sizes, parameter count and the
code modules its implementation version is derived from) is stored under the identity of its weights file
(content digest, re-read only when the file's stat changes). A descriptor is used only when the model card
is unchanged and the code version recomputed from the source files now equals the one stored, so an edit
to the model's code or a new weights file gives a miss, and the model is built again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from audiobench.atomic import atomic_write_bytes
from audiobench.cache import stable_hash
from audiobench.cachedir import cache_subdir
from audiobench.code_version import implementation_version, modules_of

FORMAT = 1


@dataclass(frozen=True)
class ModelDescriptor:
    """A built model's identity and sizes (see the module docstring)."""

    name: str
    fingerprint: dict[str, Any]
    sample_rate: int
    embedding_dim: int
    num_classes: int
    params: int  # all parameters, as AudioModel.num_parameters()
    network_params: int  # the network's parameters (the complexity cache cross-checks them)
    family: str | None
    checkpoint_sha256: str | None
    checkpoint_file: str | None
    code_roots: tuple[str, ...]


def has_released_weights(name: str) -> bool:
    """Whether model ``name``'s card names released weights (which ``pretrained=True`` then loads)."""
    from audiobench.registry import MODELS

    return getattr(MODELS.entry(name).info, "checkpoint", None) is not None


def _weights_identity(name: str, checkpoint: Path | str | None, pretrained: bool) -> str | None:
    """Content digest of the weights file the model would load ("none" without weights; None: unknown here)."""
    from audiobench.content_id import content_digest
    from audiobench.registry import MODELS

    entry = MODELS.entry(name)
    card = entry.info
    if name.startswith("hear:") or card is None:  # such modules read their own files: always build them
        return None
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.exists() and path.name == str(checkpoint):
            path = cache_subdir("checkpoints") / path.name
        return content_digest(path) if path.is_file() else None
    info = getattr(card, "checkpoint", None)
    if pretrained and info is not None:
        path = cache_subdir("checkpoints") / info.file_name
        return content_digest(path) if path.is_file() else None
    return "none"


def _key(name: str, checkpoint: Path | str | None, pretrained: bool) -> str | None:
    from audiobench.registry import MODELS

    weights = _weights_identity(name, checkpoint, pretrained)
    if weights is None:
        return None
    card = MODELS.entry(name).info
    return stable_hash({"format": FORMAT, "name": name, "weights": weights, "pretrained": pretrained,
                        "card": asdict(card) if hasattr(card, "__dataclass_fields__") else repr(card)})[:32]


def _path(key: str) -> Path:
    return cache_subdir("model-descriptors") / f"{key}.json"


def recall(name: str, checkpoint: Path | str | None, pretrained: bool) -> ModelDescriptor | None:
    """The stored descriptor of this model and weights, or None (never built, or its code changed since)."""
    key = _key(name, checkpoint, pretrained)
    if key is None or not _path(key).is_file():
        return None
    try:
        entry = json.loads(_path(key).read_text())
        if entry.pop("sha256") != stable_hash(entry):
            return None
        entry["code_roots"] = tuple(entry["code_roots"])
        descriptor = ModelDescriptor(**entry)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if implementation_version(descriptor.code_roots) != descriptor.fingerprint.get("implementation"):
        return None  # the model's code changed: its embeddings are not those cached under the old version
    return descriptor


def code_roots(model: Any) -> tuple[str, ...] | None:
    """The modules whose code (with what they import) gives ``model``'s implementation version, or None when
    the model derives its version some other way (e.g. ``hear:`` modules). Today's version of a record's model
    code is then ``implementation_version(roots)``, computed from the sources without importing torch."""
    roots = tuple(sorted(modules_of([model, *model.modules()])))
    return roots if implementation_version(roots) == model.fingerprint().get("implementation") else None


def remember(model: Any, name: str, checkpoint: Path | str | None, pretrained: bool) -> None:
    """Store the descriptor of a built ``model`` (nothing for models whose weights are not identified here)."""
    key = _key(name, checkpoint, pretrained)
    if key is None:
        return
    network = model.network
    roots = code_roots(model)
    if roots is None:
        return  # the model computes its code version some other way: do not pretend to know it
    fingerprint = model.fingerprint()
    descriptor = ModelDescriptor(
        name=name, fingerprint=fingerprint, sample_rate=model.sample_rate, embedding_dim=model.embedding_dim,
        num_classes=model.card.num_classes or 0, params=model.num_parameters(),
        network_params=sum(p.numel() for p in network.parameters()) if network is not None else 0,
        family=model.card.family, checkpoint_sha256=model.checkpoint_sha256,
        checkpoint_file=Path(model.checkpoint_path).name if model.checkpoint_path else None, code_roots=roots)
    entry = json.loads(json.dumps(asdict(descriptor), default=str))
    entry["sha256"] = stable_hash(entry)
    atomic_write_bytes(_path(key), json.dumps(entry, sort_keys=True).encode())
