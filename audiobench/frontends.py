"""Log-mel front-ends implemented with plain torch (no torchaudio).

`EfficientATMel` reproduces the evaluation-mode front-end shared by EfficientAT,
DyMN and PaSST: pre-emphasis, STFT with a symmetric Hann window, power spectrum,
Kaldi-style mel filterbank, natural log and a fixed affine normalisation.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from typing import Any, ContextManager, Dict, Optional

import torch
from torch import nn


@dataclass(frozen=True)
class MelConfig:
    """Parameters of the EfficientAT/PaSST log-mel front-end.

    ``fmax=None`` means ``sample_rate / 2 - 1000`` (the EfficientAT default with a
    2000 Hz fmax augmentation range, i.e. 15 kHz at 32 kHz).
    """

    sample_rate: int = 32000
    n_fft: int = 1024
    win_length: int = 800
    hop_length: int = 320
    n_mels: int = 128
    fmin: float = 0.0
    fmax: Optional[float] = 15000.0
    preemphasis: float = 0.97
    log_offset: float = 1e-5
    norm_shift: float = 4.5
    norm_scale: float = 5.0

    @property
    def resolved_fmax(self) -> float:
        """Upper band edge in Hz with the ``None`` default applied."""
        if self.fmax is None:
            return self.sample_rate / 2 - 1000.0
        return float(self.fmax)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-serialisable dict of all fields (used for cache keys)."""
        return asdict(self)


def autocast_disabled(device_type: str) -> ContextManager[object]:
    """A context with autocast off on ``device_type``: front-ends always compute in float32."""
    if device_type in ("cpu", "cuda"):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def _mel(freq: torch.Tensor) -> torch.Tensor:
    """Kaldi/HTK mel scale: 1127 * ln(1 + f / 700)."""
    return 1127.0 * torch.log1p(freq / 700.0)


def kaldi_mel_banks(
    n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float
) -> torch.Tensor:
    """Kaldi-style triangular mel filters (no VTLN warping).

    Triangles are equally spaced on the mel scale between ``fmin`` and ``fmax``
    and evaluated at the first ``n_fft // 2`` FFT bin frequencies; one zero column
    is appended for the Nyquist bin. A non-positive ``fmax`` is taken relative to
    Nyquist, as in Kaldi.

    Returns:
        float32 tensor of shape ``[n_mels, n_fft // 2 + 1]``.
    """
    nyquist = 0.5 * sample_rate
    if fmax <= 0.0:
        fmax = fmax + nyquist
    if not (0.0 <= fmin < fmax <= nyquist):
        raise ValueError(f"invalid band edges fmin={fmin}, fmax={fmax} for sr={sample_rate}")
    num_bins = n_fft // 2
    bin_width = sample_rate / n_fft
    mel_lo = 1127.0 * math.log1p(fmin / 700.0)
    mel_hi = 1127.0 * math.log1p(fmax / 700.0)
    delta = (mel_hi - mel_lo) / (n_mels + 1)

    idx = torch.arange(n_mels, dtype=torch.float64).unsqueeze(1)
    left = mel_lo + idx * delta
    center = mel_lo + (idx + 1.0) * delta
    right = mel_lo + (idx + 2.0) * delta
    mel = _mel(bin_width * torch.arange(num_bins, dtype=torch.float64)).unsqueeze(0)

    rising = (mel - left) / (center - left)
    falling = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(rising, falling), min=0.0)
    banks = torch.nn.functional.pad(banks, (0, 1), value=0.0)
    return banks.to(torch.float32)


class EfficientATMel(nn.Module):
    """Evaluation-mode EfficientAT/PaSST log-mel front-end.

    Input ``[B, N]`` float waveform at ``config.sample_rate``; output
    ``[B, n_mels, T]`` with ``T = 1 + (N - 1) // hop_length``.
    """

    window: torch.Tensor
    mel_basis: torch.Tensor

    def __init__(self, config: MelConfig = MelConfig()) -> None:
        super().__init__()
        self.config = config
        window = torch.hann_window(config.win_length, periodic=False)
        banks = kaldi_mel_banks(
            config.n_mels, config.n_fft, config.sample_rate, config.fmin, config.resolved_fmax
        )
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel_basis", banks, persistent=False)

    def num_frames(self, num_samples: int) -> int:
        """Number of output frames for a waveform of ``num_samples`` samples."""
        return 1 + (num_samples - 1) // self.config.hop_length

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Compute the normalised log-mel spectrogram ``[B, n_mels, T]``."""
        if waveform.dim() == 1:
            waveform = waveform.unsqueeze(0)
        if waveform.dim() != 2:
            raise ValueError(f"expected waveform [B, N], got shape {tuple(waveform.shape)}")
        cfg = self.config
        x = waveform.float()
        x = x[:, 1:] - cfg.preemphasis * x[:, :-1]
        spec = torch.stft(
            x,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self.window.float(),
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        power = torch.addcmul(spec.real.square(), spec.imag, spec.imag)  # re^2 + im^2, one pass fewer
        with autocast_disabled(power.device.type):
            mel = torch.matmul(self.mel_basis.float(), power.float())
        logmel = torch.log(mel + cfg.log_offset)
        return (logmel + cfg.norm_shift) / cfg.norm_scale
