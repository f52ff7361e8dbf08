"""Learning-rate schedules of the published recipes, as factors of each parameter group's base rate.

Both schedules are frozen dataclasses with ``__call__(step) -> factor`` so they can be handed to
``torch.optim.lr_scheduler.LambdaLR`` (whose ``state_dict`` then stores their fields) or evaluated alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from audiobench.errors import AudiobenchError


def _require(condition: bool, message: str, hint: str) -> None:
    if not condition:
        raise AudiobenchError(message, hint=hint)


@dataclass(frozen=True)
class ExpWarmupLinearDown:
    """EfficientAT / PaSST ``exp_warmup_linear_down``: exponential warm-up, constant, linear decay, constant.

    ``epoch`` is the number of completed ``scheduler.step()`` calls (LambdaLR's ``last_epoch``); the
    recipes step once per epoch after training it, so epoch ``e`` (0-based) trains with ``factor(e)``.
    The factor is the product of two parts (as in the original helpers):

    - warm-up: for ``e < warm_up_len`` it is ``exp(-5 (1 - t)^2)`` with ``t = max(e, 0.5) / warm_up_len``
      (the mean-teacher sigmoid ramp-up; epoch 0 is evaluated at half an epoch, so it is not ``exp(-5)``);
      1.0 from epoch ``warm_up_len`` on.
    - ramp-down: 1.0 for ``e <= ramp_down_start``; for ``0 < j = e - ramp_down_start < ramp_down_len`` it is
      ``last_lr_value + (1 - last_lr_value) (ramp_down_len - j) / ramp_down_len``; ``last_lr_value`` from
      epoch ``ramp_down_start + ramp_down_len`` on.

    Example (EAT ESC-50: 10 / 10 / 65 / 0.01): epoch 0 -> exp(-5 * 0.95^2) = 0.01097, epoch 9 -> exp(-0.05),
    epoch 10 -> 1.0, epoch 11 -> 0.01 + 0.99 * 64/65, epoch 75 and later -> 0.01.
    """

    warm_up_len: int
    ramp_down_start: int
    ramp_down_len: int
    last_lr_value: float = 0.01

    def __post_init__(self) -> None:
        for field in ("warm_up_len", "ramp_down_start", "ramp_down_len"):
            value = getattr(self, field)
            _require(value >= 0, f"exp_warmup_linear_down: {field} must be >= 0 epochs, got {value}.",
                     hint=f"Pass a non-negative number of epochs for {field}.")
        _require(self.last_lr_value >= 0,
                 f"exp_warmup_linear_down: last_lr_value must be >= 0, got {self.last_lr_value}.",
                 hint="last_lr_value is the final fraction of the base learning rate, e.g. 0.01.")

    def warm_up(self, epoch: float) -> float:
        """The exponential warm-up part of the factor at ``epoch``."""
        if epoch >= self.warm_up_len:
            return 1.0
        phase = 1.0 - min(max(epoch, 0.5), self.warm_up_len) / self.warm_up_len
        return math.exp(-5.0 * phase * phase)

    def ramp_down(self, epoch: float) -> float:
        """The linear ramp-down part of the factor at ``epoch``."""
        since_start = epoch - self.ramp_down_start
        if since_start <= 0:
            return 1.0
        if since_start < self.ramp_down_len:
            remaining = (self.ramp_down_len - since_start) / self.ramp_down_len
            return self.last_lr_value + (1.0 - self.last_lr_value) * remaining
        return self.last_lr_value

    def __call__(self, epoch: float) -> float:
        return self.warm_up(epoch) * self.ramp_down(epoch)


def exp_warmup_linear_down_scheduler(optimizer: torch.optim.Optimizer, warm_up_len: int, ramp_down_start: int,
                                     ramp_down_len: int,
                                     last_lr_value: float = 0.01) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR with :class:`ExpWarmupLinearDown`; call ``scheduler.step()`` once after each epoch."""
    schedule = ExpWarmupLinearDown(warm_up_len, ramp_down_start, ramp_down_len, last_lr_value)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


@dataclass(frozen=True)
class WarmupCosine:
    """Linear warm-up then half-cosine decay, per optimizer step (EfficientSED's schedule).

    ``step`` is the number of completed ``scheduler.step()`` calls. The factor is ``step / warm_up_steps``
    for ``step < warm_up_steps`` (so the first step trains with factor 0, as in
    ``transformers.get_cosine_schedule_with_warmup``), then
    ``min_factor + (1 - min_factor) * 0.5 * (1 + cos(pi * p))`` with
    ``p = (step - warm_up_steps) / (total_steps - warm_up_steps)``, which is 1.0 at ``warm_up_steps`` and
    ``min_factor`` at ``total_steps``; it stays at ``min_factor`` after ``total_steps`` (``p`` is capped at 1).
    """

    warm_up_steps: int
    total_steps: int
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        _require(self.total_steps > 0, f"warm-up cosine: total_steps must be > 0, got {self.total_steps}.",
                 hint="Pass the number of optimizer steps of the whole run (epochs x batches per epoch).")
        _require(0 <= self.warm_up_steps <= self.total_steps,
                 f"warm-up cosine: warm_up_steps must be in [0, total_steps={self.total_steps}], "
                 f"got {self.warm_up_steps}.", hint="Use fewer warm-up steps than training steps.")
        _require(0.0 <= self.min_factor <= 1.0,
                 f"warm-up cosine: min_factor must be in [0, 1], got {self.min_factor}.",
                 hint="min_factor is the final fraction of the base learning rate, e.g. 0.0 or 0.01.")

    def __call__(self, step: float) -> float:
        if step < self.warm_up_steps:
            return max(step, 0) / self.warm_up_steps
        decay_steps = max(self.total_steps - self.warm_up_steps, 1)
        progress = min((step - self.warm_up_steps) / decay_steps, 1.0)
        return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_scheduler(optimizer: torch.optim.Optimizer, warm_up_steps: int, total_steps: int,
                            min_factor: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """LambdaLR with :class:`WarmupCosine`; call ``scheduler.step()`` after every optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(warm_up_steps, total_steps, min_factor))
