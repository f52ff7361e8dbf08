"""Layer-wise learning-rate decay: optimizer parameter groups whose rate shrinks towards the input.

Layer ``k`` (0 = closest to the input, ``num_layers`` = the head) trains with
``base_lr * decay ** (num_layers - k)``, the BEiT/ViT fine-tuning convention. Parameters for which
``no_decay(name, param)`` holds (default: biases and normalisation weights, i.e. tensors with at most one
dimension, as in EfficientSED/nanoGPT) get ``weight_decay`` 0.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Tuple

from torch import nn

from audiobench.errors import AudiobenchError

# EfficientAT MN: features.0 (stem) .. features.15 (inverted residual blocks), features.16 (last 1x1 conv),
# then the classifier head as the last layer.
MOBILENET_NUM_LAYERS = 17


def is_bias_or_norm(name: str, param: nn.Parameter) -> bool:
    """True for biases and normalisation weights/biases (parameters with at most one dimension)."""
    return param.dim() <= 1


def mobilenet_layer_of(name: str) -> int:
    """Layer index of an EfficientAT MN parameter: ``features.N.*`` -> N, ``classifier.*`` -> 17.

    Any prefix is allowed (``network.features.3.block.0.0.weight`` from an audiobench adapter, or the bare
    checkpoint key). With ``num_layers=MOBILENET_NUM_LAYERS`` the head gets ``base_lr`` and ``features.16``
    ``base_lr * decay``. EfficientSED's ``layerwise_lr_decay`` gives ``features.16`` the full rate and
    ``features.0`` ``decay ** 16`` (its head has a rate of its own): ``num_layers=16`` with a ``layer_of`` that
    maps the head to 16 reproduces the backbone rates.
    """
    parts = name.split(".")
    for position, part in enumerate(parts[:-1]):
        if part == "features" and parts[position + 1].isdigit():
            return int(parts[position + 1])
    if "classifier" in parts:
        return MOBILENET_NUM_LAYERS
    raise AudiobenchError(f"Parameter {name!r} is not in the EfficientAT MobileNet layout (features.N / classifier).",
                          hint="Pass a layer_of function that knows this model's parameter names.")


def layerwise_param_groups(model: nn.Module, base_lr: float, decay: float, layer_of: Callable[[str], int],
                           num_layers: int, weight_decay: float = 0.0,
                           no_decay: Callable[[str, nn.Parameter], bool] = is_bias_or_norm,
                           ) -> List[Dict[str, Any]]:
    """Optimizer parameter groups with layer-wise learning-rate decay.

    Every trainable parameter of ``model`` appears in exactly one group (frozen ones are left out). A group
    holds the parameters of one layer with one weight-decay setting: keys ``params``, ``param_names``,
    ``lr``, ``weight_decay`` and ``layer``. Groups are ordered by layer, then decayed before not decayed.
    Schedulers such as ``LambdaLR`` scale each group's ``lr``, so the decay survives the schedule.
    """
    if base_lr <= 0 or decay <= 0:
        raise AudiobenchError(f"Layer-wise decay needs base_lr > 0 and decay > 0, got {base_lr} and {decay}.",
                              hint="Use e.g. base_lr=1e-3 and decay=0.9 (1.0 switches the decay off).")
    groups: Dict[Tuple[int, bool], Dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = layer_of(name)
        if not 0 <= layer <= num_layers:
            raise AudiobenchError(f"layer_of({name!r}) returned {layer}, outside 0..num_layers={num_layers}.",
                                  hint="Raise num_layers or fix layer_of so every layer index fits.")
        skip_decay = bool(no_decay(name, param))
        group = groups.setdefault((layer, skip_decay), {
            "params": [], "param_names": [], "lr": base_lr * decay ** (num_layers - layer),
            "weight_decay": 0.0 if skip_decay else weight_decay, "layer": layer,
        })
        group["params"].append(param)
        group["param_names"].append(name)
    return [groups[key] for key in sorted(groups)]
