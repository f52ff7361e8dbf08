"""The 3-channel multi-resolution log-mel input of "Rethinking CNN Models for Audio Classification".

Palanisamy et al. 2020 (code: github kamalesh0406/Audio-Classification, ``preprocessing/*.py`` and
``dataloaders/datasetaug.py``). One log-mel spectrogram per window/hop pair (25/10, 50/25, 100/50 ms), each
resized to ``n_mels x frames`` and stacked as the three "colour" channels of an ImageNet CNN. The original computes
each channel with ``torchaudio.transforms.MelSpectrogram`` (defaults) and resizes it with PIL; here the same
arithmetic is written in plain torch:

* window / hop in samples: Python ``round(ms * sample_rate / 1000)`` (banker's rounding: 25 ms at 44.1 kHz is
  1102 samples, 1102.5 rounded to even); periodic Hann window of that length, centred inside ``n_fft``;
* STFT with ``center=True`` and reflect padding, power spectrum (magnitude squared);
* mel filterbank as torchaudio's default: HTK mel scale (2595 log10(1 + f / 700)), ``n_mels`` triangles between
  0 Hz and ``sample_rate // 2``, **no** area normalisation (librosa: ``htk=True, norm=None``; not Slaney);
* natural log of ``mel + 1e-6``; no further normalisation (no ImageNet mean/std);
* resize of each ``[n_mels, T]`` channel to ``[n_mels, frames]`` as ``torchvision.transforms.Resize`` on a float
  PIL image does: bilinear with antialiasing when shrinking (``F.interpolate(..., antialias=True)`` follows
  PIL's resampling), so any clip length gives ``frames`` columns.

Output: ``[B, 3, n_mels, frames]`` float32 (ESC-50 preset: 44.1 kHz, n_fft 4410, 128 mels, 250 frames).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from audiobench.frontends import autocast_disabled


@dataclass(frozen=True)
class MultiResConfig:
    """Parameters of the multi-resolution log-mel front-end (defaults: the ESC-50 setting of the original)."""

    sample_rate: int = 44100
    n_fft: int = 4410
    n_mels: int = 128
    window_ms: tuple[float, ...] = (25.0, 50.0, 100.0)
    hop_ms: tuple[float, ...] = (10.0, 25.0, 50.0)
    frames: int = 250
    log_offset: float = 1e-6

    def lengths(self) -> list[tuple[int, int]]:
        """(window, hop) in samples per channel, rounded as the original (Python ``round``)."""
        return [(int(round(w * self.sample_rate / 1000)), int(round(h * self.sample_rate / 1000)))
                for w, h in zip(self.window_ms, self.hop_ms)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields (part of the model fingerprint)."""
        return {**asdict(self), "window_ms": list(self.window_ms), "hop_ms": list(self.hop_ms)}


# The three settings of the original code (preprocessing/*.py): ESC-50 at 44.1 kHz, UrbanSound8K and GTZAN at
# 22.05 kHz (n_fft 2205), GTZAN resized to 1500 frames.
PRESETS: dict[str, MultiResConfig] = {
    "esc50": MultiResConfig(),
    "urbansound8k": MultiResConfig(sample_rate=22050, n_fft=2205),
    "gtzan": MultiResConfig(sample_rate=22050, n_fft=2205, frames=1500),
}


def htk_mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float = 0.0,
                       fmax: float | None = None) -> torch.Tensor:
    """Triangular filters ``[n_mels, n_fft // 2 + 1]`` equally spaced on the HTK mel scale, peak 1, no normalisation.

    Bin ``k`` sits at ``k * (sample_rate // 2) / (n_fft // 2)`` Hz, as torchaudio places it; ``fmax`` defaults
    to ``sample_rate // 2``.
    """
    fmax = float(sample_rate // 2) if fmax is None else fmax
    to_mel = (lambda hz: 2595.0 * math.log10(1.0 + hz / 700.0))
    mels = torch.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2, dtype=torch.float64)
    edges = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)  # [n_mels + 2] band edges in Hz
    bins = torch.linspace(0.0, float(sample_rate // 2), n_fft // 2 + 1, dtype=torch.float64)
    rising = (bins[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    falling = (edges[2:, None] - bins[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    return torch.clamp(torch.minimum(rising, falling), min=0.0).to(torch.float32)


def resize_frames(spec: torch.Tensor, frames: int) -> torch.Tensor:
    """``[..., F, T]`` -> ``[..., F, frames]``: bilinear, antialiased when shrinking (PIL's resize; F unchanged).

    Computed in float64 (as PIL does for float images; float32 interpolation differs from PIL by ~1e-5).
    """
    lead = spec.shape[:-2]
    flat = spec.reshape(-1, 1, *spec.shape[-2:]).double()
    resized = F.interpolate(flat, size=(spec.shape[-2], frames), mode="bilinear", align_corners=False,
                            antialias=True)
    return resized.to(spec.dtype).reshape(*lead, spec.shape[-2], frames)


class MultiResLogMel(nn.Module):
    """Waveforms ``[B, N]`` at ``config.sample_rate`` -> ``[B, 3, n_mels, frames]`` (no weights, only buffers)."""

    mel_basis: torch.Tensor

    def __init__(self, config: MultiResConfig = MultiResConfig()) -> None:
        super().__init__()
        self.config = config
        self.lengths = config.lengths()
        for i, (window, _) in enumerate(self.lengths):
            if window > config.n_fft:
                raise ValueError(f"window of {window} samples exceeds n_fft {config.n_fft}")
            self.register_buffer(f"window{i}", torch.hann_window(window), persistent=False)
        self.register_buffer("mel_basis", htk_mel_filterbank(config.n_mels, config.n_fft, config.sample_rate),
                             persistent=False)

    @property
    def min_samples(self) -> int:
        """The shortest input the reflect padding of the STFT accepts."""
        return self.config.n_fft // 2 + 1

    def channel(self, waveforms: torch.Tensor, index: int) -> torch.Tensor:
        """Log-mel ``[B, n_mels, T]`` of one window/hop pair, before resizing."""
        window, hop = self.lengths[index]
        spec = torch.stft(waveforms, n_fft=self.config.n_fft, hop_length=hop, win_length=window,
                          window=getattr(self, f"window{index}"), center=True, pad_mode="reflect",
                          normalized=False, onesided=True, return_complex=True)
        power = spec.real.square() + spec.imag.square()
        return torch.log(torch.matmul(self.mel_basis, power) + self.config.log_offset)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        if waveforms.dim() == 1:
            waveforms = waveforms.unsqueeze(0)
        if waveforms.shape[-1] < self.min_samples:
            raise ValueError(f"clips need at least {self.min_samples} samples, got {waveforms.shape[-1]}")
        with autocast_disabled(waveforms.device.type):
            waveforms = waveforms.float()
            channels = [resize_frames(self.channel(waveforms, i), self.config.frames) for i in range(len(self.lengths))]
        return torch.stack(channels, dim=1)
