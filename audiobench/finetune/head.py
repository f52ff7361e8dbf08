"""A new classification head for a task: the network's final class layer(s) rebuilt with the task's classes.

As the original fine-tuning scripts do (EfficientAT ``get_mn(num_classes=50, pretrained_name=...)`` builds the
50-class model, loads every pretrained tensor except ``classifier.5`` and keeps that layer's fresh
initialisation; PaSST and CP-Mobile likewise rebuild their output layers): everything else keeps its
pretrained weights. Which layers hold the classes, and how a fresh one is initialised, is one table entry per
network class (:data:`HEAD_LAYOUTS`), unless the adapter has its own ``reset_head(num_classes)`` (the Rethinking
CNN baselines: a new ``nn.Linear`` replaces the ImageNet classifier, Inception's auxiliary branch is dropped).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from torch import nn

from audiobench.errors import AudiobenchError
from audiobench.models.base import AudioModel


def _vit_init(module: nn.Module) -> None:
    """PaSST/DeiT initialisation of a fresh linear layer: truncated normal (std .02), zero bias."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.trunc_normal_(layer.weight, std=0.02, a=-2.0, b=2.0)
            nn.init.zeros_(layer.bias)


def _mobilenet_init(module: nn.Module) -> None:
    from audiobench.models.efficientat import init_mobilenet_weights

    init_mobilenet_weights(module)  # N(0, .01) linears, Kaiming convs, unit/zero batch norms


@dataclass(frozen=True)
class HeadLayout:
    """Module paths of the layers whose outputs are the classes, and how a fresh one is initialised."""

    paths: tuple[str, ...]
    init: Callable[[nn.Module], None]


#: Network class name -> its head layout (the layers the official fine-tuning scripts rebuild).
HEAD_LAYOUTS: dict[str, HeadLayout] = {
    "MobileNet": HeadLayout(("classifier.5",), _mobilenet_init),  # EfficientAT MN "mlp" head
    "DyMN": HeadLayout(("classifier.5",), _mobilenet_init),
    "CPMobile": HeadLayout(("feed_forward.0", "feed_forward.1"), _mobilenet_init),  # 1x1 conv + batch norm
    "PaSST": HeadLayout(("head.1", "head_dist"), _vit_init),  # head_dist only in distilled releases
}

#: Layer type -> the same layer with ``classes`` outputs.
RESIZERS: dict[type, Callable[[nn.Module, int], nn.Module]] = {
    nn.Linear: lambda layer, classes: nn.Linear(layer.in_features, classes, bias=layer.bias is not None),
    nn.Conv2d: lambda layer, classes: nn.Conv2d(layer.in_channels, classes, layer.kernel_size, layer.stride,
                                                layer.padding, bias=layer.bias is not None),
    nn.BatchNorm2d: lambda layer, classes: nn.BatchNorm2d(classes, eps=layer.eps, momentum=layer.momentum),
}

ACTIVATIONS = {"multiclass": "softmax", "multilabel": "sigmoid"}


def head_layout(model: AudioModel) -> HeadLayout:
    """The head layout of ``model``'s network (AudiobenchError for networks without one)."""
    network = model.network
    name = type(network).__name__ if network is not None else "None"
    if name not in HEAD_LAYOUTS:
        raise AudiobenchError(f"Model {model.card.name!r} ({model.card.family}, network {name}) has no known "
                              f"classification head to replace, so it cannot be fine-tuned.",
                              hint=f"Fine-tuning supports the networks {', '.join(HEAD_LAYOUTS)}.")
    return HEAD_LAYOUTS[name]


def _parent_and_name(network: nn.Module, path: str) -> tuple[nn.Module, str]:
    parent, _, name = path.rpartition(".")
    return (network.get_submodule(parent) if parent else network), name


def replace_head(model: AudioModel, num_classes: int, label_type: str, task: str | None = None) -> AudioModel:
    """Give ``model`` a freshly initialised head of ``num_classes`` outputs (in place; returns ``model``).

    The card follows: ``num_classes``, the output activation of ``label_type`` (softmax for multiclass, sigmoid
    for multilabel), ``label_set`` = ``task`` and ``config["head_classes"]`` (so the fingerprint, and with it
    every cache key, differs from the released head's). Draws come from torch's global generator (seed it).
    """
    if label_type not in ACTIVATIONS:
        raise AudiobenchError(f"Label type {label_type!r} has no classification head.",
                              hint=f"Fine-tuning supports {', '.join(ACTIVATIONS)} tasks.")
    network = model.network
    reset = getattr(model, "reset_head", None)  # an adapter that knows its own fine-tuning head
    for path in (() if callable(reset) else head_layout(model).paths):
        parent, name = _parent_and_name(network, path)
        old = getattr(parent, name, None)
        if old is None:
            continue
        if type(old) not in RESIZERS:
            raise AudiobenchError(f"Head layer {path} of {model.card.name!r} is a {type(old).__name__}, which "
                                  f"cannot be resized.", hint="Add the layer type to audiobench.finetune.head.RESIZERS.")
        fresh = RESIZERS[type(old)](old, num_classes)
        head_layout(model).init(fresh)
        reference = next(iter(old.parameters()), None)
        if reference is not None:
            fresh = fresh.to(device=reference.device, dtype=reference.dtype)
        setattr(parent, name, fresh)
    if callable(reset):
        reset(int(num_classes))
    if hasattr(network, "num_classes"):
        network.num_classes = int(num_classes)
    config = getattr(network, "config", None)
    if config is not None and hasattr(config, "num_classes"):
        network.config = replace(config, num_classes=int(num_classes))
    card = model.card
    model.card = replace(card, num_classes=int(num_classes), output_activation=ACTIVATIONS[label_type],
                         label_set=task, config={**card.config, "head_classes": int(num_classes)})
    return model

