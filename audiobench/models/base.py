"""The model adapter contract every audiobench model implements."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from audiobench.errors import AudiobenchError
from audiobench.models.cards import ModelCard


def as_waveforms(waveforms: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """Waveforms ``[B, N]`` from a numpy array, tensor or list: 1-D is one clip, 2-D a batch of clips.

    The result is on ``device`` (default: where the input is); float64 becomes float32, other float
    types are kept. Integer PCM is refused (its scale is ambiguous).
    """
    if isinstance(waveforms, torch.Tensor):
        tensor = waveforms
    else:
        import numpy as np

        tensor = torch.as_tensor(np.ascontiguousarray(np.asarray(waveforms)))
    if tensor.dim() not in (1, 2):
        raise AudiobenchError(f"Waveforms must be 1-D (one clip) or 2-D (a batch), got shape {tuple(tensor.shape)}.",
                              hint="Pass mono audio as [N] or [B, N] samples at the model's sample rate.")
    if not tensor.is_floating_point():
        raise AudiobenchError(f"Waveforms must be floating point, got {tensor.dtype}.",
                              hint="Scale integer PCM to [-1, 1] first (e.g. int16 samples / 32768).")
    dtype = torch.float32 if tensor.dtype == torch.float64 else tensor.dtype
    tensor = tensor.unsqueeze(0) if tensor.dim() == 1 else tensor
    return tensor.to(device=device if device is not None else tensor.device, dtype=dtype)


def frames_on_grid(frames: torch.Tensor, times_ms: torch.Tensor, grid_ms: torch.Tensor) -> torch.Tensor:
    """Frame features ``[B, T', D]`` at ``times_ms`` ``[T']`` linearly interpolated onto ``grid_ms`` ``[T]``.

    Grid points before the first (after the last) frame take the first (last) frame's features. Used by
    models whose native frame grid is coarser than the fixed timestamp hop (e.g. AST's 100 ms patch columns).
    """
    times = times_ms.to(torch.float64)
    grid = grid_ms.to(torch.float64).clamp(times[0], times[-1])
    right = torch.searchsorted(times, grid).clamp(1, max(len(times) - 1, 1))
    left = right - 1 if len(times) > 1 else right * 0
    right = right if len(times) > 1 else right * 0
    span = (times[right] - times[left]).clamp(min=1e-9)
    weight = ((grid - times[left]) / span).clamp(0, 1).to(frames.dtype)[None, :, None]
    return frames[:, left] * (1 - weight) + frames[:, right] * weight


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

    min_frame_window_ms: float = 0.0  # the shortest window :meth:`embed_frames` may cut for this model
    frame_chunk_windows: int = 256  # windows embedded per call of :meth:`embed` in :meth:`embed_frames`

    def frame_geometry(self, num_samples: int, window_ms: float = 160.0,
                       hop_ms: float = 50.0) -> tuple[int, int, int]:
        """(window samples, hop samples, number of frames T) of :meth:`embed_frames` for clips of ``num_samples``.

        The window is at least :attr:`min_frame_window_ms`; ``T = 1 + num_samples // hop``.
        """
        window_ms = max(window_ms, self.min_frame_window_ms)
        window = max(int(round(window_ms * self.sample_rate / 1000.0)), 1)
        hop = max(int(round(hop_ms * self.sample_rate / 1000.0)), 1)
        return window, hop, 1 + num_samples // hop

    def embed_frames(self, waveforms: torch.Tensor, window_ms: float = 160.0,
                     hop_ms: float = 50.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Frame embeddings ``[B, T, D]`` and each frame's centre time in ms ``[T]``, at a fixed hop.

        Convention (as the EfficientAT_HEAR and hear21passt wrappers): the clip is padded by half a
        window at both ends (reflect padding; zeros when the clip is too short to reflect), window ``t``
        is centred on sample ``t * hop`` of the clip, its timestamp is ``t * hop`` in ms (the first is
        0), and ``T = 1 + N // hop`` depends only on the clip length ``N``. Each window is embedded
        with :meth:`embed`, at most :attr:`frame_chunk_windows` windows per call, so memory stays
        bounded. Windows are at least :attr:`min_frame_window_ms` long (models whose card sets
        ``segment_seconds`` pad each window up to one segment).
        """
        waveforms = as_waveforms(waveforms, self.device)
        batch, num_samples = waveforms.shape
        window, hop, count = self.frame_geometry(num_samples, window_ms, hop_ms)
        left, right = window // 2, window - window // 2
        mode = "reflect" if num_samples > max(left, right) else "constant"
        padded = torch.nn.functional.pad(waveforms.unsqueeze(1), (left, right), mode=mode).squeeze(1)
        views = padded.unfold(-1, window, hop)[:, :count]  # [B, T, window], no copy
        chunks = []
        for start in range(0, batch * count, self.frame_chunk_windows):
            flat = torch.arange(start, min(start + self.frame_chunk_windows, batch * count))
            chunks.append(self.embed(views[flat // count, flat % count]))
        frames = torch.cat(chunks).reshape(batch, count, -1)
        timestamps = torch.arange(count, dtype=torch.float64) * (1000.0 * hop / self.sample_rate)
        return frames, timestamps

    def input_stage(self) -> nn.Module | None:
        """A weight-free module mapping waveforms ``[B, N]`` to what :meth:`embed_inputs` takes.

        Embedding extraction runs it in the audio-decoding workers on CPU, beside the network. None
        (the default) means :meth:`embed` does all the work.
        """
        return None

    def embed_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Clip embeddings from the output of :meth:`input_stage`."""
        return self.embed(inputs)

    def head_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pretrained-head probabilities ``[B, num_classes]`` from the output of :meth:`input_stage`."""
        return self.probabilities(inputs)

    def logits_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pretrained-head logits ``[B, num_classes]`` from the output of :meth:`input_stage`."""
        return self.logits(inputs)

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
        return self.probabilities(as_waveforms(waveform, self.device))[0]

    def fingerprint(self) -> dict[str, Any]:
        """What determines this model's embeddings (used as the embedding cache key).

        ``implementation`` is derived from the source of the code that computes the output (see
        :func:`code_version`), so a change to that code gives a new key without a version bumped by hand.
        """
        return {
            "model": self.card.name,
            "config": self.card.config,
            "checkpoint_sha256": self.checkpoint_sha256,
            "frontend": self.frontend_config(),
            "sample_rate": self.sample_rate,
            "implementation": self.code_version(),
        }

    def code_version(self) -> str:
        """Hash of the audiobench code defining this model, its layers and its front-end."""
        from audiobench.code_version import implementation_version, modules_of

        return implementation_version(modules_of([self, *self.modules()]))

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
