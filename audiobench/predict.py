"""``predict``: the top-k classes of a model's own pretrained head for one audio file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from audiobench.audio import load_audio
from audiobench.device import resolve_device
from audiobench.errors import AudiobenchError
from audiobench.labels import resolve_labels
from audiobench.models.loading import load_model


def predict_file(path: Path, model_name: str, checkpoint: Path | None = None, top_k: int = 5,
                 labels: Path | None = None, device: str = "auto") -> dict[str, Any]:
    """Load ``model_name`` with its released (or given) weights and score the whole file."""
    model = load_model(model_name, checkpoint=checkpoint, pretrained=True).to(resolve_device(device))
    card = model.card
    if card.num_classes is None:
        raise AudiobenchError(f"Model {model_name!r} has no pretrained classification head.",
                              hint="Use a model with a head (see `audiobench list models`), or `audiobench run`.")
    waveform = torch.from_numpy(load_audio(path, model.sample_rate)).to(model.device)
    with torch.inference_mode():
        probabilities = model.clip_probabilities(waveform).float().cpu()
    names, warning = (resolve_labels(card.label_set, card.num_classes, labels,
                                     Path(model.checkpoint_path) if model.checkpoint_path else None)
                      if card.label_set else ([f"class {i}" for i in range(card.num_classes)], None))
    scores, indices = probabilities.topk(min(top_k, len(probabilities)))
    return {
        "file": str(path), "model": model_name, "checkpoint_sha256": model.checkpoint_sha256,
        "activation": card.output_activation, "warning": warning,
        "top": [{"index": int(i), "label": names[int(i)], "score": float(s)} for s, i in zip(scores, indices)],
    }
