"""One adapter for every "log-mel front-end + network" model (MN, DyMN, PaSST, CP-Mobile).

The network returns ``(logits, embedding)`` for a mel batch ``[B, 1, F, T]``; frame-level features
come from its ``features_map`` (CNNs: ``[B, C, F', T']``) or ``forward_tokens`` (transformers:
``[B, F', T', D]``). Models trained on short segments (CP-Mobile: 1 s) set ``segment_seconds`` in
their card's config: a clip is cut into segments whose outputs are averaged.
"""

from __future__ import annotations

import torch
from torch import nn

from audiobench.frontends import EfficientATMel, MelConfig
from audiobench.models.base import AudioModel, as_waveforms
from audiobench.models.cards import ModelCard


class MelInput(nn.Module):
    """Waveforms ``[B, N]`` -> log-mels ``[B, S, 1, F, T]`` (S segments per clip, 1 without segmenting).

    The model's input stage: it holds no weights, so DataLoader workers can run it next to decoding.
    """

    def __init__(self, frontend: EfficientATMel, segment_samples: int | None) -> None:
        super().__init__()
        self.frontend = frontend
        self.segment_samples = segment_samples

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        count = 1
        if self.segment_samples is not None:  # a trailing partial segment is dropped unless it is the only one
            size = self.segment_samples
            if waveforms.shape[-1] < size:
                waveforms = nn.functional.pad(waveforms, (0, size - waveforms.shape[-1]))
            count = waveforms.shape[-1] // size
            waveforms = waveforms[:, : count * size].reshape(-1, size)
        mel = self.frontend(waveforms)
        return mel.reshape(-1, count, 1, *mel.shape[-2:])


class MelNetworkModel(AudioModel):
    """Waveform -> log-mel -> network."""

    def __init__(self, card: ModelCard, network: nn.Module, mel_config: MelConfig) -> None:
        super().__init__(card, network)
        self.frontend = EfficientATMel(mel_config)
        self.segment_samples = (int(round(card.config["segment_seconds"] * card.sample_rate))
                                if card.config.get("segment_seconds") else None)
        self.stage = MelInput(self.frontend, self.segment_samples)

    def input_stage(self) -> MelInput:
        return self.stage

    @staticmethod
    def _batch(mel: torch.Tensor) -> torch.Tensor:
        """``[B, S, 1, F, T]`` -> network batch ``[B*S, 1, F, T]`` (channels_last on CPU)."""
        mel = mel.flatten(0, 1)
        return mel.contiguous(memory_format=torch.channels_last) if mel.device.type == "cpu" else mel

    def network_input(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self._batch(self.stage(waveforms))

    def _forward_inputs(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and embeddings ``[B, S, ...]`` per segment."""
        logits, embedding = self.network(self._batch(mel))
        return logits.unflatten(0, mel.shape[:2]), embedding.unflatten(0, mel.shape[:2])

    def embed_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        return self._forward_inputs(inputs)[1].mean(dim=1)

    def head_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.activate(self._forward_inputs(inputs)[0]).mean(dim=1)

    def logits_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        return self._forward_inputs(inputs)[0].mean(dim=1)

    def embed(self, waveforms: torch.Tensor) -> torch.Tensor:
        waveforms = as_waveforms(waveforms, self.device)
        return self.embed_inputs(self.stage(waveforms))

    def logits(self, waveforms: torch.Tensor) -> torch.Tensor:
        waveforms = as_waveforms(waveforms, self.device)
        return self.logits_inputs(self.stage(waveforms))

    def probabilities(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Output activation per segment, then the mean over segments (as the DCASE systems average)."""
        waveforms = as_waveforms(waveforms, self.device)
        return self.activate(self._forward_inputs(self.stage(waveforms))[0]).mean(dim=1)

    @property
    def min_frame_window_ms(self) -> float:
        """Shortest window :meth:`embed_frames` cuts: enough samples for the STFT's reflect padding and,
        for patch networks (PaSST: 16 frames, 150 ms at hop 10 ms), one patch of mel frames.

        0 with ``segment_seconds``: every window is zero-padded up to one segment.
        """
        if self.segment_samples is not None:
            return 0.0
        cfg = self.frontend.config
        frames = getattr(getattr(self.network, "config", None), "patch_size", 1)
        samples = max(cfg.n_fft // 2 + 2, (frames - 1) * cfg.hop_length + 1)  # T = 1 + (N - 1) // hop frames
        return 1000.0 * samples / self.sample_rate


def build_mobilenet(card: ModelCard) -> MelNetworkModel:
    """EfficientAT MobileNet of the card's width."""
    from audiobench.models.efficientat import MobileNet

    network = MobileNet(width_mult=card.config["width_mult"], num_classes=card.num_classes or 527)
    return MelNetworkModel(card, network, MelConfig(sample_rate=card.sample_rate))


def build_dymn(card: ModelCard) -> MelNetworkModel:
    """EfficientAT dynamic MobileNet of the card's width, at the card's dynamic-conv temperature."""
    from audiobench.models.dymn import DyMN

    network = DyMN(width_mult=card.config["width_mult"], num_classes=card.num_classes or 527)
    network.temperature = card.config.get("temperature", 1.0)
    return MelNetworkModel(card, network, MelConfig(sample_rate=card.sample_rate))


def build_passt(card: ModelCard) -> MelNetworkModel:
    """PaSST of the card's release configuration."""
    from audiobench.models.passt import passt_from_release

    network = passt_from_release(card.config["release"])
    return MelNetworkModel(card, network, MelConfig(sample_rate=card.sample_rate,
                                                    hop_length=card.config.get("hop_length", 320)))


def build_cpmobile(card: ModelCard) -> MelNetworkModel:
    """CP-Mobile scene classifier with its own 256-band front-end, on 1 s segments."""
    from audiobench.models.cpmobile import CPMOBILE_MEL_CONFIG, CPMobile

    return MelNetworkModel(card, CPMobile(n_classes=card.num_classes or 10), CPMOBILE_MEL_CONFIG)
