"""Fine-tuned weights on disk: ``<name>.pt`` (the network's state_dict) with ``<name>.card.json`` beside it.

The card names the parent model and the sha256 of the checkpoint it started from, the task, its classes and
label type, the recipe, the data and split it was trained on, which epoch was kept and the split's test
score. A model built from its registered name gets the card's head (:func:`fit_to_saved_card`), after which
the weights load with ``strict=True`` like any release: :func:`load_finetuned`.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from audiobench.atomic import atomic_write_bytes
from audiobench.download import sha256_of
from audiobench.errors import CheckpointError
from audiobench.models.base import AudioModel

CARD_SUFFIX = ".card.json"
CARD_FORMAT = "audiobench-finetuned-1"


def card_path(weights: Path) -> Path:
    """``<weights stem>.card.json`` beside ``weights``."""
    weights = Path(weights)
    return weights.with_name(weights.stem + CARD_SUFFIX)


def save_finetuned(model: AudioModel, path: Path, card: dict[str, Any]) -> str:
    """Write ``model``'s network weights to ``path`` and the card beside them (both atomically); return the
    weights' sha256 (also stored in the card)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.network.state_dict().items()}, buffer)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    sha256 = sha256_of(path)
    full = {"format": CARD_FORMAT, "model": model.card.name, "family": model.card.family,
            "num_classes": model.card.num_classes, "output_activation": model.card.output_activation,
            **card, "weights_file": path.name, "weights_sha256": sha256}
    atomic_write_bytes(card_path(path), (json.dumps(full, indent=1, default=str) + "\n").encode())
    return sha256


def read_saved_card(weights: Path) -> dict[str, Any] | None:
    """The card beside ``weights``, or None when there is none (a plain release file)."""
    path = card_path(Path(weights))
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"Model card {path} cannot be read ({error}).",
                              hint="Restore the card written beside the fine-tuned weights.") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT or not isinstance(card.get("num_classes"), int):
        raise CheckpointError(f"{path} is not an audiobench fine-tuned model card.",
                              hint="Restore the card written beside the fine-tuned weights.")
    return card


def fit_to_saved_card(model: AudioModel, weights: Path) -> bool:
    """Give ``model`` the head described by the card beside ``weights`` (True), or leave it (False: no card)."""
    from audiobench.finetune.head import replace_head

    card = read_saved_card(weights)
    if card is None:
        return False
    if card["family"] != model.card.family:
        raise CheckpointError(f"{weights} was fine-tuned from a {card['family']} model ({card['model']}), not "
                              f"{model.card.family} ({model.card.name}).", hint=f"Pass --model {card['model']}.")
    label_type = "multiclass" if card["output_activation"] == "softmax" else "multilabel"
    replace_head(model, card["num_classes"], label_type, card.get("task"))
    return True


def load_finetuned(name: str, weights: Path) -> AudioModel:
    """Model ``name`` with the fine-tuned ``weights`` (head from the card beside them; loaded with strict=True)."""
    from audiobench.models.checkpoints import load_weights
    from audiobench.registry import MODELS

    entry = MODELS.entry(name)
    model: AudioModel = entry.load()(entry.info)
    weights = Path(weights)
    if not fit_to_saved_card(model, weights):
        raise CheckpointError(f"{weights} has no fine-tuned model card ({card_path(weights).name}) beside it.",
                              hint="Pass the .pt file written by `audiobench run --protocol finetune`.")
    model.checkpoint_sha256 = load_weights(model.network, weights)
    model.checkpoint_path = str(weights)
    return model.prepare_for_inference()


def load_any(spec: str) -> AudioModel:
    """``MODEL`` (released weights) or ``MODEL@WEIGHTS`` (a fine-tuned file with its card, else a plain file)."""
    from audiobench.models.loading import has_released_weights, load_model

    name, _, weights = spec.partition("@")
    if not weights:
        return load_model(name, pretrained=has_released_weights(name))
    if read_saved_card(Path(weights)) is not None:
        return load_finetuned(name, Path(weights))
    return load_model(name, checkpoint=weights)
