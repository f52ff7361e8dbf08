"""The model adapter contract every audiobench model implements."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from audiobench.models.cards import ModelCard


class AudioModel(nn.Module):
    """A model as the rest of audiobench sees it.

    ``network`` is the torch module whose ``state_dict`` follows the official checkpoint layout;
    the adapter adds the front-end and the small glue around it. Waveforms are mono float tensors
    ``[B, N]`` at :attr:`sample_rate`.
    """

    def __init__(self, card: ModelCard, network: nn.Module | None) -> None:
        super().__init__()
        self.card = card
        self.network = network
        self.checkpoint_sha256: str | None = None  # set when weights are loaded
        self.checkpoint_path: str | None = None

    @property
    def sample_rate(self) -> int:
        return self.card.sample_rate

    @property
    def embedding_dim(self) -> int:
        return self.card.embedding_dim

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def embed(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Clip embeddings ``[B, D]``."""
        raise NotImplementedError

    def embed_frames(self, waveforms: torch.Tensor, window_s: float = 1.0,
                     hop_s: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame embeddings ``[B, T, D]`` and each frame's centre time in ms ``[T]``.

        This default embeds windows of ``window_s`` centred every ``hop_s`` (zero-padded at the edges);
        models with a frame-level representation override it.
        """
        window, hop = int(window_s * self.sample_rate), int(hop_s * self.sample_rate)
        padded = torch.nn.functional.pad(waveforms, (window // 2, window // 2))
        starts = range(0, max(padded.shape[-1] - window, 0) + 1, hop)
        windows = torch.stack([padded[:, s:s + window] for s in starts], dim=1)  # [B, T, window]
        frames = self.embed(windows.flatten(0, 1)).reshape(waveforms.shape[0], len(starts), -1)
        return frames, torch.arange(len(starts), dtype=torch.float64) * (1000.0 * hop_s)

    def input_stage(self) -> nn.Module | None:
        """A weight-free module mapping waveforms ``[B, N]`` to what :meth:`embed_inputs` takes.

        Embedding extraction runs it in the audio-decoding workers on CPU, beside the network. None
        (the default) means :meth:`embed` does all the work.
        """
        return None

    def embed_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Clip embeddings from the output of :meth:`input_stage`."""
        return self.embed(inputs)

    def network_input(self, waveforms: torch.Tensor) -> torch.Tensor | None:
        """What the front-end hands to ``network`` (used to count the network's complexity alone).

        None when the model has no separate network input (e.g. a wrapped HEAR module).
        """
        return None

    def logits(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Outputs of the pretrained head ``[B, num_classes]`` (before the output activation)."""
        raise NotImplementedError(f"model {self.card.name!r} has no pretrained classification head")

    def activate(self, logits: torch.Tensor) -> torch.Tensor:
        """The card's output activation: softmax over classes, else sigmoid (multi-label)."""
        return logits.softmax(dim=-1) if self.card.output_activation == "softmax" else logits.sigmoid()

    def probabilities(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Head outputs after the card's output activation (sigmoid or softmax)."""
        return self.activate(self.logits(waveforms))

    def clip_probabilities(self, waveform: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[num_classes]`` for one whole clip ``[N]`` (models may segment it)."""
        return self.probabilities(waveform.unsqueeze(0))[0]

    def fingerprint(self) -> dict[str, Any]:
        """What determines this model's embeddings (used as the embedding cache key)."""
        return {
            "model": self.card.name,
            "config": self.card.config,
            "checkpoint_sha256": self.checkpoint_sha256,
            "frontend": self.frontend_config(),
        }

    def frontend_config(self) -> dict[str, Any]:
        """The front-end configuration (part of the fingerprint)."""
        frontend = getattr(self, "frontend", None)
        config = getattr(frontend, "config", None)
        return config.to_dict() if config is not None else {}

    def prepare_for_inference(self) -> "AudioModel":
        """Eval mode, and channels_last weights on CPU (faster convolutions there)."""
        self.eval()
        if self.network is not None and self.device.type == "cpu":
            self.network.to(memory_format=torch.channels_last)
        return self

    def num_parameters(self) -> int:
        """Parameters of the network (BN running statistics excluded)."""
        module = self.network if self.network is not None else self
        return sum(p.numel() for p in module.parameters())
