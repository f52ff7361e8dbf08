"""Adapter for the EfficientAT MobileNets: waveform -> log-mel -> MobileNet."""

from __future__ import annotations

import torch

from audiobench.frontends import EfficientATMel, MelConfig
from audiobench.models.base import AudioModel
from audiobench.models.cards import ModelCard
from audiobench.models.efficientat import MobileNet


class EfficientATModel(AudioModel):
    """An EfficientAT MobileNet with its front-end; embeddings are the pooled final feature map."""

    def __init__(self, card: ModelCard) -> None:
        network = MobileNet(width_mult=card.config["width_mult"], num_classes=card.num_classes or 527)
        super().__init__(card, network)
        self.frontend = EfficientATMel(MelConfig(sample_rate=card.sample_rate))

    def _forward(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mel = self.frontend(waveforms).unsqueeze(1)
        if mel.device.type == "cpu":
            mel = mel.contiguous(memory_format=torch.channels_last)
        return self.network(mel)

    def embed(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self._forward(waveforms)[1]

    def logits(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self._forward(waveforms)[0]



def build(card: ModelCard) -> EfficientATModel:
    """Factory registered for every MobileNet width."""
    return EfficientATModel(card)
