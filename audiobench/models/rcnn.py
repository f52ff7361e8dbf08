"""Adapter for the "Rethinking CNN Models for Audio Classification" baselines (Palanisamy et al. 2020).

An ImageNet CNN (:mod:`audiobench.models.imagenet_cnns`, torchvision key layout, so the released ImageNet
weights load strictly) on the 3-channel multi-resolution log-mel image (:mod:`audiobench.models.multires_logmel`).

* ``embed``: the pooled penultimate features of the network (DenseNet-201: 1920, ResNet-50 / Inception v3: 2048).
* ``reset_head(num_classes)``: the original recipe's fine-tuning head: the ImageNet classifier is replaced by a new
  ``nn.Linear(features, num_classes)``; Inception v3's auxiliary branch is dropped (the original built it with
  ``aux_logits=False``). Until then the model has no audio head and ``logits`` refuses.
* ``logits`` / ``logits_inputs`` (= ``forward``): the head's outputs, from waveforms or from the input stage.

Card ``config`` keys: ``arch`` (a key of :data:`~audiobench.models.imagenet_cnns.ARCHITECTURES`), ``frontend``
(a preset of :data:`~audiobench.models.multires_logmel.PRESETS`, default ``"esc50"``) and ``network_options``
(e.g. ``{"transform_input": true}`` for Inception v3, as torchvision sets it with pretrained weights). A card with
``num_classes`` gets a head of that size at build time (for fine-tuned checkpoints of that head).
"""

from __future__ import annotations

import torch
from torch import nn

from audiobench.errors import AudiobenchError
from audiobench.models.base import AudioModel, as_waveforms
from audiobench.models.cards import ModelCard
from audiobench.models.imagenet_cnns import ImageNetCNN, build_imagenet_cnn
from audiobench.models.multires_logmel import PRESETS, MultiResLogMel


class RethinkingCNN(AudioModel):
    """Waveform -> 3-channel multi-resolution log-mel ``[B, 3, 128, 250]`` -> ImageNet CNN."""

    frame_chunk_windows = 32  # each window becomes a full 128 x 250 image: keep memory bounded

    def __init__(self, card: ModelCard, network: ImageNetCNN, frontend: MultiResLogMel) -> None:
        super().__init__(card, network)
        self.frontend = frontend
        self.head_classes: int | None = None
        if getattr(network, "aux_logits", False):
            # Inception v3: AuxLogits stays for strict loading of the released file but never runs (it needs
            # >= 5 x 5 maps after Mixed_6e, i.e. ~299 px inputs; the spectrogram is 128 high).
            network.aux_logits = False

    def input_stage(self) -> MultiResLogMel:
        return self.frontend

    @property
    def min_frame_window_ms(self) -> float:
        """The STFT's reflect padding needs ``n_fft // 2 + 1`` samples (50 ms at 44.1 kHz)."""
        return 1000.0 * self.frontend.min_samples / self.sample_rate

    @staticmethod
    def _batch(images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if images.device.type == "cpu" else images

    def network_input(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self._batch(self.frontend(as_waveforms(waveforms, self.device)))

    def embed_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.network.forward_features(self._batch(inputs))

    def embed(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.embed_inputs(self.frontend(as_waveforms(waveforms, self.device)))

    def reset_head(self, num_classes: int) -> nn.Linear:
        """A new ``nn.Linear(embedding_dim, num_classes)`` head for fine-tuning (replaces the ImageNet classifier)."""
        drop_aux = getattr(self.network, "drop_aux_logits", None)
        if drop_aux is not None:
            drop_aux()
        head = self.network.reset_classifier(num_classes)
        self.head_classes = num_classes
        return head

    def logits_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Head outputs ``[B, head_classes]`` from the input stage's images (works in training mode too)."""
        if self.head_classes is None:
            raise AudiobenchError(
                f"Model {self.card.name!r} has no audio classification head yet (its network still ends in the "
                f"1000-class ImageNet classifier).",
                hint="Call model.reset_head(num_classes) and fine-tune it, or use its embeddings with a probe.")
        return self.network(self._batch(inputs))

    forward = logits_inputs

    def logits(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.logits_inputs(self.frontend(as_waveforms(waveforms, self.device)))

    def head_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.activate(self.logits_inputs(inputs))


def build_rcnn(card: ModelCard) -> RethinkingCNN:
    """The card's ImageNet CNN (random weights) with its multi-resolution front-end."""
    config = card.config
    preset = config.get("frontend", "esc50")
    if preset not in PRESETS:
        raise AudiobenchError(f"Model {card.name!r}: unknown front-end preset {preset!r}.",
                              hint=f"Use one of: {', '.join(PRESETS)}.")
    frontend = MultiResLogMel(PRESETS[preset])
    if frontend.config.sample_rate != card.sample_rate:
        raise AudiobenchError(f"Model {card.name!r}: the card's sample rate {card.sample_rate} differs from the "
                              f"{preset!r} front-end's {frontend.config.sample_rate}.",
                              hint="Give the card the front-end's sample rate.")
    network = build_imagenet_cnn(config["arch"], **config.get("network_options", {}))
    if network.num_features != card.embedding_dim:
        raise AudiobenchError(f"Model {card.name!r}: embedding_dim {card.embedding_dim} on the card, but "
                              f"{config['arch']} gives {network.num_features} features.",
                              hint=f"Set embedding_dim to {network.num_features}.")
    model = RethinkingCNN(card, network, frontend)
    if card.num_classes:
        model.reset_head(card.num_classes)
    return model
