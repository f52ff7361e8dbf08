"""Every audiobench model as a HEAR 2021 module (https://hearbenchmark.com/hear-api.html).

Directly, choosing the model by name::

    from audiobench import hear_api
    model = hear_api.load_model("", model_name="mn10")   # "" = the released weights
    scene = hear_api.get_scene_embeddings(audio, model)  # [n, scene_embedding_size]

For tools that import a HEAR module by name and call ``load_model(model_file_path)`` (hear-eval-kit,
hear-validator), ``audiobench.hear.<module name>`` is such a module for every registered model, e.g.
``importlib.import_module("audiobench.hear.mn04").load_model("mn04_as_mAP_432.pt")``.

Module names: the registry name with every character other than ASCII letters, digits and "_"
replaced by "_" (``logmel-stats`` -> ``audiobench.hear.logmel_stats``); see :func:`module_name_for`.
"""

from __future__ import annotations

import importlib
import re
import types
from typing import Any

from audiobench.errors import UnknownNameError
from audiobench.registry import MODELS

PACKAGE = "audiobench.hear"


def module_name_for(model_name: str) -> str:
    """``audiobench.hear.<safe name>`` of a registered model (see the module docstring)."""
    return f"{PACKAGE}.{re.sub(r'[^A-Za-z0-9_]', '_', model_name)}"


def model_name_for(safe_name: str) -> str | None:
    """The registered model whose module name ends in ``safe_name`` (the registry name itself works too)."""
    if safe_name in MODELS:
        return safe_name
    matches = [name for name in MODELS.names() if module_name_for(name) == f"{PACKAGE}.{safe_name}"]
    if len(matches) > 1:
        raise UnknownNameError(f"HEAR module name {safe_name!r} is ambiguous: {', '.join(matches)}.")
    return matches[0] if matches else None


def _hear_model_class() -> type:
    from torch import nn

    class HEARModel(nn.Module):
        """A loaded AudioModel with the attributes the HEAR API asks for."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model
            self.sample_rate = model.sample_rate
            self.scene_embedding_size = model.embedding_dim
            self.timestamp_embedding_size = model.embedding_dim

    return HEARModel


def load_model(model_file_path: str = "", model_name: str = "mn10") -> Any:
    """Load audiobench model ``model_name``; weights from ``model_file_path``, else its released ones."""
    from audiobench.models.loading import has_released_weights, load_model as load_audiobench_model

    model = load_audiobench_model(model_name, checkpoint=model_file_path or None,
                                  pretrained=has_released_weights(model_name))
    return _hear_model_class()(model)


def get_scene_embeddings(audio: Any, model: Any) -> Any:
    """``[n_sounds, n_samples]`` mono audio at ``model.sample_rate`` -> ``[n_sounds, scene_embedding_size]``."""
    import torch

    with torch.inference_mode():
        return model.model.embed(audio.to(model.model.device))


def get_timestamp_embeddings(audio: Any, model: Any) -> tuple[Any, Any]:
    """``([n_sounds, T, timestamp_embedding_size], timestamps in ms [n_sounds, T])``.

    Frames come from ``AudioModel.embed_frames``: 160 ms windows every 50 ms, timestamp ``t * 50`` ms is
    the centre of window ``t`` (the first is 0) and ``T = 1 + n_samples // hop``, the same for every
    sound and batch (AST keeps its own patch-column frames, see its ``embed_frames``).
    """
    import torch

    inner = model.model
    with torch.inference_mode():
        audio = audio.to(inner.device)
        frames, timestamps = inner.embed_frames(audio)
    timestamps = torch.as_tensor(timestamps, dtype=torch.float32, device=frames.device)
    return frames, timestamps.unsqueeze(0).expand(frames.shape[0], -1).contiguous()


def build_module(full_name: str, model_name: str) -> types.ModuleType:
    """A module object exposing the three HEAR functions for ``model_name``."""
    module = types.ModuleType(full_name, f"HEAR 2021 API for the audiobench model {model_name!r}.")

    def load(model_file_path: str = "") -> Any:
        return load_model(model_file_path, model_name=model_name)
    module.load_model = load  # type: ignore[attr-defined]
    module.get_scene_embeddings = get_scene_embeddings  # type: ignore[attr-defined]
    module.get_timestamp_embeddings = get_timestamp_embeddings  # type: ignore[attr-defined]
    module.MODEL_NAME = model_name  # type: ignore[attr-defined]
    return module


def hear_module_for(model_name: str) -> types.ModuleType:
    """The module ``audiobench.hear.<safe name>`` of ``model_name`` (imported, so in sys.modules)."""
    if model_name_for(model_name) is None:
        MODELS.entry(model_name)  # raises UnknownNameError with the known names
    return importlib.import_module(module_name_for(model_name))
