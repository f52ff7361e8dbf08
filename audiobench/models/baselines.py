"""Models without learned weights, used for the embedded default task and as sanity baselines."""

from __future__ import annotations

import torch

from audiobench.frontends import EfficientATMel, MelConfig
from audiobench.models.base import AudioModel, as_waveforms
from audiobench.models.cards import ModelCard


class LogMelStats(AudioModel):
    """Embedding = per-mel-band mean and standard deviation over time of the EfficientAT log-mel."""

    def __init__(self, card: ModelCard) -> None:
        super().__init__(card, network=None)
        self.frontend = EfficientATMel(MelConfig(sample_rate=card.sample_rate))

    def embed(self, waveforms: torch.Tensor) -> torch.Tensor:
        waveforms = as_waveforms(waveforms, self.device)
        mel = self.frontend(waveforms)
        return torch.cat([mel.mean(dim=-1), mel.std(dim=-1)], dim=-1)

    def num_parameters(self) -> int:
        return 0


def build_logmel_stats(card: ModelCard) -> LogMelStats:
    """Factory registered as ``logmel-stats``."""
    return LogMelStats(card)
