"""Waveform augmentations of the EfficientAT downstream recipes, batched: time roll, random gain, wavmix.

Waveforms are ``[B, N]`` or ``[B, 1, N]`` (time on the last axis); every draw is per example and comes from
an optional ``torch.Generator``. The original code applies them per clip in the dataset (gain, then roll,
then wavmix with a partner drawn from the whole dataset); here the partner of wavmix is another clip of the
batch (a random permutation), which keeps it a batched tensor operation.
"""

from __future__ import annotations

import torch

from audiobench.errors import AudiobenchError
from audiobench.finetune.mixup import MixResult, draw_device, folded_beta, per_example, random_permutation


def _check_batch(waveforms: torch.Tensor) -> None:
    if waveforms.dim() not in (2, 3):
        raise AudiobenchError(f"Waveform batch must be [B, N] or [B, 1, N], got shape {tuple(waveforms.shape)}.",
                              hint="Stack the clips of a batch along the first axis, time last.")


def roll_each(waveforms: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Circular shift of each example by its own number of samples (as ``torch.roll(x[i], shifts[i], -1)``)."""
    _check_batch(waveforms)
    length = waveforms.shape[-1]
    positions = torch.arange(length, device=waveforms.device)
    source = (positions[None, :] - shifts.to(waveforms.device).long()[:, None]) % length  # [B, N]
    source = source.reshape(waveforms.shape[0], *([1] * (waveforms.dim() - 2)), length).expand_as(waveforms)
    return torch.gather(waveforms, -1, source)


def random_time_roll(waveforms: torch.Tensor, max_shift: int = 4000,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Roll each example by an integer shift drawn uniformly from ``[-max_shift, max_shift]`` (inclusive)."""
    if max_shift < 0:
        raise AudiobenchError(f"max_shift must be >= 0 samples, got {max_shift}.",
                              hint="The EfficientAT recipes use 4000 samples (0.125 s at 32 kHz).")
    shifts = torch.randint(-max_shift, max_shift + 1, (waveforms.shape[0],), generator=generator,
                           device=draw_device(generator))
    return roll_each(waveforms, shifts)


def apply_gain_db(waveforms: torch.Tensor, gains_db: torch.Tensor) -> torch.Tensor:
    """Scale each example by ``10 ** (gain_db / 20)``."""
    _check_batch(waveforms)
    return waveforms * per_example(10.0 ** (gains_db.double() / 20.0), waveforms)


def random_gain(waveforms: torch.Tensor, max_gain_db: float = 12.0, generator: torch.Generator | None = None,
                integer_db: bool = False) -> torch.Tensor:
    """Random gain per example, uniform in ``[-max_gain_db, max_gain_db]`` dB.

    ``integer_db=True`` draws as the EfficientAT code does: whole decibels from ``-g`` to ``g - 1`` for
    ``g = int(max_gain_db)`` (the upper end is excluded there).
    """
    if max_gain_db < 0:
        raise AudiobenchError(f"max_gain_db must be >= 0, got {max_gain_db}.",
                              hint="The EfficientAT recipes use 12 dB.")
    size, device = (waveforms.shape[0],), draw_device(generator)
    if integer_db:
        limit = int(max_gain_db)
        gains = (torch.randint(-limit, limit, size, generator=generator, device=device) if limit > 0
                 else torch.zeros(size))
    else:
        gains = (torch.rand(size, generator=generator, device=device, dtype=torch.float64) * 2.0 - 1.0) * max_gain_db
    return apply_gain_db(waveforms, gains)


def wavmix(waveforms: torch.Tensor, p: float = 0.5, beta: float = 2.0,
           generator: torch.Generator | None = None) -> MixResult:
    """Waveform mixing: with probability ``p`` an example is mixed with its partner ``perm[i]``.

    Both waveforms are centred (their mean removed), mixed with weight ``lam = max(b, 1 - b)``,
    ``b ~ Beta(beta, beta)`` for the example itself, and the mix is centred again. Examples not drawn for
    mixing stay unchanged and get ``lam = 1``, so :func:`audiobench.finetune.mixup.mix_targets` with the
    returned ``perm`` and ``lam`` gives the right targets for every example.
    """
    _check_batch(waveforms)
    if not 0.0 <= p <= 1.0:
        raise AudiobenchError(f"wavmix probability must be in [0, 1], got {p}.", hint="The recipes use p=0.5.")
    batch = waveforms.shape[0]
    chosen = torch.rand(batch, generator=generator, device=draw_device(generator)).cpu() < p
    perm = random_permutation(batch, generator)
    lam = torch.where(chosen, folded_beta(beta, batch, generator), torch.ones(batch))
    centred = waveforms - waveforms.mean(dim=-1, keepdim=True)
    weight = per_example(lam, waveforms)
    mixed = centred * weight + centred[perm.to(waveforms.device)] * (1.0 - weight)
    mixed = mixed - mixed.mean(dim=-1, keepdim=True)
    out = torch.where(per_example(chosen, waveforms).bool(), mixed, waveforms)
    return MixResult(out, perm.to(waveforms.device), lam.to(waveforms.device))
