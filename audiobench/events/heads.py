"""Frame heads trained on frozen frame embeddings with strong labels: ``frame-linear`` and ``frame-gru``.

Both standardise the frame embeddings with the training frames' mean and standard deviation, train
with binary cross-entropy on the frame targets (padding frames masked out), Adam, a fixed number of
epochs over shuffled mini-batches of clips, seeded; they return sigmoid frame scores.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from audiobench.protocols.mlp_train import torch_threads


class _Linear(nn.Module):
    def __init__(self, dim: int, classes: int, **_: Any) -> None:
        super().__init__()
        self.out = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.out(x)


class _BiGRU(nn.Module):
    def __init__(self, dim: int, classes: int, hidden: int = 96, layers: int = 1, **_: Any) -> None:
        super().__init__()
        self.gru = nn.GRU(dim, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # packed: each clip's backward direction starts at its own last frame, not at the batch's padding, so a
        # clip's scores do not depend on the clips that share its batch
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        out, _ = nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=x.shape[1])
        return self.out(out)


def _pad(sequences: Sequence[np.ndarray], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded batch ``[B, T_max, width]`` and its frame mask ``[B, T_max]``."""
    longest = max(len(s) for s in sequences)
    batch = np.zeros((len(sequences), longest, width), dtype=np.float32)
    mask = np.zeros((len(sequences), longest), dtype=np.float32)
    for row, sequence in enumerate(sequences):
        batch[row, :len(sequence)] = sequence
        mask[row, :len(sequence)] = 1.0
    return torch.from_numpy(batch), torch.from_numpy(mask)


class FrameHead:
    """A frame head (``network`` ``([B, T, D], lengths [B]) -> [B, T, C]`` logits) with its training settings."""

    name = "frame-head"
    network_class: type[nn.Module] = _Linear
    architecture = ""

    def __init__(self, epochs: int = 30, lr: float = 1e-3, batch_size: int = 16, weight_decay: float = 0.0,
                 seed: int = 0, device: str = "cpu", **network_options: Any) -> None:
        self.epochs, self.lr, self.batch_size = int(epochs), float(lr), int(batch_size)
        self.weight_decay = float(weight_decay)
        self.seed, self.device, self.network_options = int(seed), device, dict(network_options)
        self.network: nn.Module | None = None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def describe(self) -> dict[str, Any]:
        """The head's settings for the result record."""
        return {"name": self.name, "head": self.architecture, "epochs": self.epochs, "lr": self.lr,
                "batch_size_clips": self.batch_size, "weight_decay": self.weight_decay,
                "loss": "binary cross-entropy on frame targets (padding frames masked)", "optimizer": "Adam",
                "standardize": "training frames' mean and std", **self.network_options}

    def _standardised(self, sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [((s - self.mean) / self.std).astype(np.float32) for s in sequences]

    def fit(self, sequences: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> "FrameHead":
        """Train on clips' frame embeddings ``[T_i, D]`` and frame targets ``[T_i, C]``."""
        frames = np.concatenate(sequences)
        self.mean = frames.mean(axis=0)
        std = frames.std(axis=0)
        self.std = np.where(std > 1e-8, std, 1.0)
        x, dim, classes = self._standardised(sequences), frames.shape[1], targets[0].shape[1]
        cuda = [torch.device(self.device)] if self.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=cuda), torch_threads(self.device, frames.size):
            torch.manual_seed(self.seed)
            network = self.network_class(dim, classes, **self.network_options).to(self.device)
            optimiser = torch.optim.Adam(network.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            order = torch.Generator().manual_seed(self.seed)
            network.train()
            for _ in range(self.epochs):
                for chunk in torch.randperm(len(x), generator=order).split(self.batch_size):
                    inputs, mask = _pad([x[i] for i in chunk.tolist()], dim)
                    wanted, _ = _pad([targets[i] for i in chunk.tolist()], classes)
                    lengths = mask.sum(dim=1).long()
                    mask = mask.to(self.device)
                    logits = network(inputs.to(self.device), lengths)
                    losses = nn.functional.binary_cross_entropy_with_logits(logits, wanted.to(self.device),
                                                                            reduction="none")
                    loss = (losses * mask[..., None]).sum() / (mask.sum() * classes).clamp(min=1.0)
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
        self.network = network.eval()
        return self

    def predict(self, sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Sigmoid frame scores ``[T_i, C]`` (float32) of each clip."""
        if self.network is None:
            raise RuntimeError("fit the head first")
        x, scores = self._standardised(sequences), []
        with torch.no_grad():
            for start in range(0, len(x), self.batch_size):
                part = x[start:start + self.batch_size]
                inputs, mask = _pad(part, part[0].shape[1])
                logits = self.network(inputs.to(self.device), mask.sum(dim=1).long())
                out = torch.sigmoid(logits).float().cpu().numpy()
                scores += [out[row, :len(sequence)] for row, sequence in enumerate(part)]
        return scores


class FrameLinear(FrameHead):
    """``frame-linear``: one linear layer on each standardised frame embedding."""

    name = "frame-linear"
    network_class = _Linear
    architecture = "standardise -> Linear(D, C) per frame -> sigmoid"


class FrameGRU(FrameHead):
    """``frame-gru``: a bidirectional GRU over the clip's frames, then a linear layer per frame."""

    name = "frame-gru"
    network_class = _BiGRU
    architecture = ("standardise -> bidirectional GRU (hidden per direction, layers; packed, each clip's own length) "
                    "-> Linear(2 hidden, C) -> sigmoid")

    def __init__(self, hidden: int = 96, layers: int = 1, **options: Any) -> None:
        super().__init__(hidden=int(hidden), layers=int(layers), **options)


#: Frame heads by protocol name (registered in audiobench/registry.py as PROTOCOLS entries by the lead).
HEADS: dict[str, type[FrameHead]] = {"frame-linear": FrameLinear, "frame-gru": FrameGRU}
