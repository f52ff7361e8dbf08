"""Device impulse response (DIR) augmentation (Morocutti et al., EUSIPCO 2023).

Recordings of the reference device ``a`` are convolved with the impulse response of another microphone
so a scene classifier sees more recording devices in training (DIR PaSST recipe and the DCASE23
CP-Mobile recipe; the impulse responses are the 66 MicIRP files shipped with them).

Behaviour of the original code (DIRAugmentation ``datasets/dataset.py`` and cpjku_dcase23
``datasets/dcase23.py``), followed here:

* the impulse responses are all ``*.wav`` files under the folder (recursively), sorted by path, read as
  mono and resampled to the model's sample rate; they are **not normalised** (the MicIRP files are
  already peak-normalised to 1);
* each clip whose device is ``a`` is augmented with probability ``p`` (0.6 in both recipes), with an
  impulse response drawn uniformly;
* the output is the **first N samples of the full convolution** (``convolve(x, ir, 'full')[:N]``), not
  a centred ('same') crop, so the response's onset delay is kept; the output is not rescaled.

The convolution is done for the whole batch at once with real FFTs in torch (on the waveforms'
device), in the waveforms' dtype.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from audiobench.audio import read_audio, resample
from audiobench.errors import AudiobenchError

__all__ = ["load_device_irs", "device_mask", "fft_convolve_prefix", "DeviceIRAugment"]

IR_PATTERN = "*.wav"  # the originals read every wav under the folder


def load_device_irs(directory: str | Path, sample_rate: int) -> list[np.ndarray]:
    """All impulse responses under ``directory`` (sorted by path), mono float32 at ``sample_rate``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise AudiobenchError(f"Device impulse response folder {directory} does not exist.",
                              hint="Pass the folder holding the MicIRP wav files (e.g. shared/data/tau22/device_irs).")
    paths = sorted(directory.rglob(IR_PATTERN))
    if not paths:
        raise AudiobenchError(f"Device impulse response folder {directory} holds no {IR_PATTERN} files.",
                              hint="Put the MicIRP impulse responses (wav) there, or pass the folder that holds them.")
    irs = []
    for path in paths:
        signal, rate = read_audio(path)  # raises AudioFileError naming the file
        irs.append(np.ascontiguousarray(resample(signal, rate, sample_rate), dtype=np.float32))
    return irs


def device_mask(devices: Sequence[str], device: str = "a") -> torch.Tensor:
    """Boolean mask ``[B]``: which clips were recorded with ``device`` (TAU ids: ``a``, ``b``, ``s1``...)."""
    return torch.tensor([d == device for d in devices], dtype=torch.bool)


def _fft_length(n: int) -> int:
    from scipy.fft import next_fast_len

    return int(next_fast_len(n, real=True))


def fft_convolve_prefix(signals: torch.Tensor, irs: torch.Tensor) -> torch.Tensor:
    """First ``N`` samples of the full linear convolution of each row of ``signals [M, N]`` with ``irs [M, L]``."""
    n = signals.shape[-1]
    size = _fft_length(n + irs.shape[-1] - 1)  # no circular wrap-around into the first N samples
    spectrum = torch.fft.rfft(signals, n=size) * torch.fft.rfft(irs.to(signals.dtype), n=size)
    return torch.fft.irfft(spectrum, n=size)[..., :n]


class DeviceIRAugment:
    """Convolve device-``a`` clips of a batch with a random device impulse response, with probability ``p``.

    ``irs`` are 1-D impulse responses at ``sample_rate`` (see :func:`load_device_irs`); they are
    zero-padded to a common length, which leaves the first N samples of every convolution unchanged.
    Draws come from a private generator seeded with ``seed``, so a run is reproducible.
    """

    def __init__(self, irs: Sequence[np.ndarray], sample_rate: int, p: float = 0.6, seed: int = 0) -> None:
        if not irs:
            raise AudiobenchError("DeviceIRAugment needs at least one impulse response, got none.",
                                  hint="Load them with load_device_irs(folder, sample_rate).")
        if not 0.0 <= p <= 1.0:
            raise AudiobenchError(f"DIR probability p={p} is outside [0, 1].", hint="Use e.g. p=0.6 (the recipes).")
        length = max(len(ir) for ir in irs)
        bank = np.zeros((len(irs), length), dtype=np.float32)
        for row, ir in zip(bank, irs):
            row[: len(ir)] = ir
        self.irs = torch.from_numpy(bank)
        self.sample_rate, self.p = sample_rate, p
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def from_directory(cls, directory: str | Path, sample_rate: int, p: float = 0.6,
                       seed: int = 0) -> "DeviceIRAugment":
        """Augmentation with every impulse response under ``directory``."""
        return cls(load_device_irs(directory, sample_rate), sample_rate, p, seed)

    def __len__(self) -> int:
        return self.irs.shape[0]

    def draw(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(apply ``[B]`` bool, impulse response index ``[B]``) for one batch, on the CPU."""
        apply = torch.rand(batch, generator=self.generator) < self.p
        choice = torch.randint(len(self), (batch,), generator=self.generator)
        return apply, choice

    def __call__(self, waveforms: torch.Tensor, is_device_a: torch.Tensor | Sequence[bool]) -> torch.Tensor:
        """``waveforms [B, N]`` or ``[B, 1, N]`` -> same shape; only device-``a`` rows can change.

        Returns the input tensor itself when no row is augmented, otherwise a new tensor.
        """
        if not (waveforms.dim() == 2 or (waveforms.dim() == 3 and waveforms.shape[1] == 1)):
            raise AudiobenchError(f"DIR augmentation needs mono waveforms [B, N] or [B, 1, N], got shape "
                                  f"{tuple(waveforms.shape)}.", hint="Downmix to mono first.")
        batch = waveforms.shape[0]
        mask = torch.as_tensor(is_device_a, dtype=torch.bool).reshape(-1).cpu()  # the draws live on the CPU
        if mask.numel() != batch:
            raise AudiobenchError(f"Device mask has {mask.numel()} entries for a batch of {batch} waveforms.",
                                  hint="Pass one boolean per waveform (True = recorded with device a).")
        apply, choice = self.draw(batch)
        rows = torch.nonzero(apply & mask).flatten()
        if rows.numel() == 0:
            return waveforms
        flat = waveforms.reshape(batch, -1)
        out = flat.clone()
        irs = self.irs[choice[rows]].to(waveforms.device)
        rows = rows.to(waveforms.device)
        out[rows] = fft_convolve_prefix(flat[rows], irs)
        return out.reshape(waveforms.shape)
