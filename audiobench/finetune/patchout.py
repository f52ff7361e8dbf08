"""Structured patchout settings of the PaSST fine-tuning recipes.

Structured patchout (Koutini et al., Interspeech 2022) drops ``t`` random time columns and ``f``
random frequency rows of the patch grid in training mode only (``PaSST._structured_patchout``); eval
mode always sees the whole grid. The network reads ``s_patchout_t`` / ``s_patchout_f`` from its
frozen :class:`~audiobench.models.passt.PaSSTConfig`, so :func:`configure_patchout` swaps in a copy
of the config with the new values.
"""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from audiobench.errors import AudiobenchError
from audiobench.models.passt import PaSST

__all__ = ["PATCHOUT_RECIPES", "passt_network", "configure_patchout", "configure_recipe_patchout"]

#: (time columns, frequency rows) dropped in training, per recipe (script defaults).
PATCHOUT_RECIPES: dict[str, tuple[int, int]] = {
    "passt-audioset": (40, 4),  # PaSST ex_audioset.py
    "passt-esc50": (10, 3),  # PaSST ex_esc50.py (its README example uses f 5)
    "passt-fsd50k": (10, 4),  # PaSST ex_fsd50k.py
    "passt-openmic": (40, 4),  # PaSST ex_openmic.py
    "dir-tau22": (0, 6),  # DIRAugmentation main_passt.py
}


def passt_network(model: nn.Module) -> PaSST:
    """The PaSST network of ``model``: the model itself or its ``network`` (audiobench model adapters)."""
    for candidate in (model, getattr(model, "network", None)):
        if isinstance(candidate, PaSST):
            return candidate
    name = getattr(getattr(model, "card", None), "name", type(model).__name__)
    raise AudiobenchError(f"Model {name!r} is not a PaSST network, so patchout cannot be set.",
                          hint="Structured patchout applies to PaSST models only (e.g. passt-s).")


def configure_patchout(model: nn.Module, t: int, f: int) -> PaSST:
    """Drop ``t`` time columns and ``f`` frequency rows of the patch grid in training mode; returns the network."""
    for axis, value in (("t", t), ("f", f)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise AudiobenchError(f"Patchout {axis}={value!r} must be a non-negative integer.",
                                  hint="E.g. t=10, f=3 (PaSST ESC-50 recipe); 0 disables it.")
    network = passt_network(model)
    network.config = replace(network.config, s_patchout_t=t, s_patchout_f=f)
    return network


def configure_recipe_patchout(model: nn.Module, recipe: str) -> PaSST:
    """Patchout of a named recipe (see :data:`PATCHOUT_RECIPES`)."""
    if recipe not in PATCHOUT_RECIPES:
        raise AudiobenchError(f"No patchout settings for recipe {recipe!r}.",
                              hint=f"Use one of: {', '.join(PATCHOUT_RECIPES)}.")
    return configure_patchout(model, *PATCHOUT_RECIPES[recipe])
