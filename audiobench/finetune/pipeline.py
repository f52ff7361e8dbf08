"""One training batch through a recipe's augmentations (in the recipe's order) and its loss.

Waveform steps run on ``[B, N]`` waveforms before the model's front-end, spectrogram steps on the log-mels
``[B, S, 1, F, T]`` it returns (S segments per clip; 1 except for segment models such as CP-Mobile). Targets
are soft ``[B, C]`` rows (one-hot or multi-hot) and are mixed exactly as the inputs are (wavmix, mixup); with
one-hot rows, cross-entropy against the mixed row equals EfficientAT's ``lam * CE(y) + (1 - lam) * CE(y[perm])``.
Every random draw comes from the one ``torch.Generator`` handed in (on the CPU; the building blocks move
the draws to the batch's device), so a run is reproducible and resumable.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import torch
import torch.nn.functional as F

from audiobench.errors import AudiobenchError
from audiobench.finetune import losses
from audiobench.finetune.distillation import DISTILLATION_KINDS, distillation_loss
from audiobench.finetune.freq_mixstyle import freq_mixstyle
from audiobench.finetune.mixup import mix_targets, mixup
from audiobench.finetune.recipes import SPECTROGRAM_STEPS
from audiobench.finetune.spec_masking import spec_augment
from audiobench.finetune.waveform_augment import random_gain, random_time_roll, wavmix


@dataclass
class Batch:
    """A batch on its way to the loss: inputs ``x``, soft ``targets`` mixed as ``x`` is, the targets before the
    spectrogram mixup (``unmixed``) and that mixup's ``(perm, lam)`` (for distillation), device-``a`` flags."""

    x: torch.Tensor
    targets: torch.Tensor
    unmixed: torch.Tensor
    mix: tuple[torch.Tensor, torch.Tensor] | None = None
    device_a: torch.Tensor | None = None


Step = Callable[["Augmenter", Batch], Batch]


def _gain(aug: "Augmenter", b: Batch) -> Batch:
    return replace(b, x=random_gain(b.x, aug.r["gain_db"], aug.generator, integer_db=aug.r["gain_integer_db"]))


def _roll(aug: "Augmenter", b: Batch) -> Batch:
    return replace(b, x=random_time_roll(b.x, aug.r["roll_max_shift"], aug.generator))


def _wavmix(aug: "Augmenter", b: Batch) -> Batch:
    mixed = wavmix(b.x, aug.r["wavmix_p"], aug.r["wavmix_beta"], aug.generator)
    targets = mix_targets(b.targets, mixed.perm, mixed.lam)
    return replace(b, x=mixed.inputs, targets=targets, unmixed=targets)


def _dir(aug: "Augmenter", b: Batch) -> Batch:
    return replace(b, x=aug.device_irs(b.x, b.device_a))


def _spec_mask(aug: "Augmenter", b: Batch) -> Batch:
    return replace(b, x=spec_augment(b.x, aug.r["freqm"], aug.r["timem"], aug.generator))


def _mixup(aug: "Augmenter", b: Batch) -> Batch:
    mixed = mixup(b.x, aug.r["mixup_alpha"], aug.generator)
    return replace(b, x=mixed.inputs, targets=mix_targets(b.targets, mixed.perm, mixed.lam), unmixed=b.targets,
                   mix=(mixed.perm, mixed.lam))


def _mixstyle(aug: "Augmenter", b: Batch) -> Batch:
    flat = b.x.flatten(0, 1)  # [B*S, 1, F, T]: statistics per segment over channels and time
    styled = freq_mixstyle(flat, aug.r["mixstyle_p"], aug.r["mixstyle_alpha"], generator=aug.generator)
    return replace(b, x=styled.unflatten(0, b.x.shape[:2]))


#: Augmentation name -> step (the recipe lists names; see ``recipes.WAVEFORM_STEPS`` / ``SPECTROGRAM_STEPS``).
STEPS: dict[str, Step] = {"gain": _gain, "roll": _roll, "wavmix": _wavmix, "dir": _dir, "spec_mask": _spec_mask,
                          "mixup": _mixup, "mixstyle": _mixstyle}


class Augmenter:
    """The recipe's augmentations: :meth:`waveforms` before the front-end, :meth:`spectrograms` after it."""

    def __init__(self, recipe: Any, generator: torch.Generator, device_irs: Any = None) -> None:
        self.r, self.generator, self.device_irs = recipe, generator, device_irs
        steps = list(recipe["augment"])
        if "dir" in steps and device_irs is None:
            raise AudiobenchError("The recipe applies device impulse responses (dir) but none were loaded.",
                                  hint="Pass --recipe-option dir_folder=PATH (e.g. shared/data/tau22/device_irs).")
        self.waveform_steps = [STEPS[s] for s in steps if s not in SPECTROGRAM_STEPS]
        self.spectrogram_steps = [STEPS[s] for s in steps if s in SPECTROGRAM_STEPS]

    def waveforms(self, batch: Batch) -> Batch:
        for step in self.waveform_steps:
            batch = step(self, batch)
        return batch

    def spectrograms(self, batch: Batch) -> Batch:
        for step in self.spectrogram_steps:
            batch = step(self, batch)
        return batch


#: Training loss name -> loss(logits, soft targets, mask, recipe).
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None, Any], torch.Tensor]] = {
    "cross_entropy": lambda logits, targets, mask, r: F.cross_entropy(logits, targets),
    "bce": lambda logits, targets, mask, r: losses.bce_with_targets(logits, targets),
    "masked_bce": lambda logits, targets, mask, r: losses.masked_bce(logits, targets, mask,
                                                                    r["masked_bce_normalize"]),
}
#: Loss -> the label type it trains; distillation kind -> the label type of its label term.
LOSS_LABEL_TYPES = {"cross_entropy": "multiclass", "bce": "multilabel", "masked_bce": "multilabel"}
KD_LABEL_TYPES = {"dcase23": "multiclass", "audioset": "multilabel"}


def check_objective(recipe: Any, label_type: str) -> None:
    """The recipe's loss (and distillation kind) must fit the task's label type; distillation takes no wavmix."""
    name = recipe.name if hasattr(recipe, "name") else "recipe"
    if LOSS_LABEL_TYPES[recipe["loss"]] != label_type:
        raise AudiobenchError(f"Recipe {name!r}: loss {recipe['loss']!r} trains {LOSS_LABEL_TYPES[recipe['loss']]} "
                              f"tasks, this task is {label_type}.",
                              hint="Pick a recipe for this kind of task or --recipe-option loss=...")
    if recipe["teacher"]:
        if KD_LABEL_TYPES[recipe["kd_kind"]] != label_type:
            raise AudiobenchError(f"Recipe {name!r}: distillation kind {recipe['kd_kind']!r} is for "
                                  f"{KD_LABEL_TYPES[recipe['kd_kind']]} tasks, this task is {label_type}.",
                                  hint=f"Use --recipe-option kd_kind=... (one of {', '.join(DISTILLATION_KINDS)}).")
        if "wavmix" in recipe["augment"]:
            raise AudiobenchError(f"Recipe {name!r}: wavmix together with distillation is not supported.",
                                  hint="Remove wavmix from augment (the distillation recipes do not use it).")


class Objective:
    """The recipe's training loss; with ``teacher_logits`` ``[N, C]`` (rows = dataset clips), distillation."""

    def __init__(self, recipe: Any, teacher_logits: torch.Tensor | None = None) -> None:
        self.r, self.teacher = recipe, teacher_logits

    def __call__(self, logits: torch.Tensor, batch: Batch, rows: list[int], mask: torch.Tensor | None) -> torch.Tensor:
        if self.teacher is None:
            return LOSSES[self.r["loss"]](logits, batch.targets, mask, self.r)
        teacher = self.teacher[rows].to(logits.device)
        return distillation_loss(logits, teacher, batch.unmixed, self.r["kd_kind"], self.r["kd_temperature"],
                                 self.r["kd_weight"], mix=batch.mix)
