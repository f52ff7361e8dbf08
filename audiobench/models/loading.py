"""``load_model``: build a registered model and (optionally) load its weights."""

from __future__ import annotations

from pathlib import Path

from audiobench.download import ProgressCallback
from audiobench.errors import CheckpointError
from audiobench.models.base import AudioModel
from audiobench.models.checkpoints import load_weights, resolve_checkpoint
from audiobench.registry import MODELS


def load_model(name: str, checkpoint: str | Path | None = None, pretrained: bool = False,
               allow_download: bool = True, progress: ProgressCallback | None = None) -> AudioModel:
    """Build model ``name``.

    With ``checkpoint`` the weights come from that file (a bare file name such as ``"mn04_as_mAP_432.pt"``
    that is not a path here is looked up in the checkpoint cache); with ``pretrained=True`` the released weights
    are taken from the cache or downloaded. Otherwise the network keeps its random initialisation
    (as ``timm.create_model`` does by default). Weights are loaded strictly.
    """
    entry = MODELS.entry(name)
    card = entry.info
    factory = entry.load()
    if getattr(factory, "loads_own_weights", False):
        # The factory reads its weights itself (e.g. a HEAR module's load_model(model_file_path)):
        # it is called as factory(card, checkpoint=path or None).
        return factory(card, checkpoint=checkpoint).prepare_for_inference()
    model: AudioModel = factory(card)
    if checkpoint is not None and model.network is None:
        raise CheckpointError(f"Model {name!r} has no weights, so the checkpoint {checkpoint} would be ignored.",
                              hint="Leave out --checkpoint for this model.")
    if model.network is not None and (checkpoint is not None or pretrained):
        path = resolve_checkpoint(card, Path(checkpoint) if checkpoint else None, allow_download, progress)
        if checkpoint is not None:  # fine-tuned weights: the head their card (saved beside them) describes
            from audiobench.finetune.saved import fit_to_saved_card

            fit_to_saved_card(model, path)
        info = card.checkpoint
        # a released file was verified against the card's sha256 by resolve_checkpoint: no second hashing
        verified = info.sha256 if info is not None and checkpoint is None else None
        model.checkpoint_sha256 = load_weights(model.network, path, info.key_prefix if info else "", verified)
        model.checkpoint_path = str(path)
    return model.prepare_for_inference()


from audiobench.models.descriptor import has_released_weights  # noqa: E402 - re-exported here

__all__ = ["has_released_weights", "load_model"]
