"""What a fine-tuning run prepares before training: the base model, the waveform source, teacher logits, DIR."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from audiobench.datasets.base import DatasetIndex
from audiobench.errors import AudiobenchError
from audiobench.finetune.data import WaveformSource, derived_seed
from audiobench.finetune.recipes import RecipeError, ResolvedRecipe
from audiobench.models.base import AudioModel

BASE_SEED = 10  # stream id of derived_seed for a randomly initialised base model


def base_model(name: str, checkpoint: Path | None, recipe: ResolvedRecipe, seed: int) -> AudioModel:
    """The model fine-tuning starts from: released weights, ``checkpoint`` (a release file or fine-tuned weights
    with their card), or (``init: random``) a seeded random initialisation. On the CPU."""
    from audiobench.finetune.saved import load_any
    from audiobench.models.loading import has_released_weights, load_model

    if recipe["init"] == "random":
        if checkpoint is not None:
            raise RecipeError(f"Recipe {recipe.name!r} with init=random ignores --checkpoint {checkpoint}.",
                              hint="Leave out --checkpoint, or use --recipe-option init=pretrained.")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived_seed(seed, BASE_SEED))
            return load_model(name, pretrained=False)
    if checkpoint is not None:
        return load_any(f"{name}@{checkpoint}")
    if not has_released_weights(name):
        raise RecipeError(f"Model {name!r} has no released weights to fine-tune from.",
                          hint="Pass --checkpoint PATH, or --recipe-option init=random to train from scratch.")
    return load_model(name, pretrained=True)


def waveform_source(index: DatasetIndex, sample_rate: int, seconds: float, device: torch.device,
                    threads: int | None, workers: int | None) -> tuple[WaveformSource, Any, Any]:
    """The clips' waveforms through the shared audio cache; returns (source, thread plan, audio cache or None)."""
    from audiobench.embeddings import audio_cache_for
    from audiobench.input_pipeline import clip_digests
    from audiobench.threads import plan_threads

    digests = clip_digests([clip.path for clip in index.clips])
    audio = audio_cache_for(sample_rate, seconds, index.clips)
    to_decode = len(audio.missing(digests)) if audio is not None else len(index.clips)
    plan = plan_threads(device.type, to_decode, threads, workers)
    source = WaveformSource(index.clips, sample_rate, seconds, plan, audio, digests if audio is not None else None,
                            pin_memory=device.type == "cuda")
    return source, plan, audio


def teacher_logits(specs: Sequence[str], index: DatasetIndex, rows: np.ndarray, seconds: float, num_classes: int,
                   device: torch.device, batch_size: int, workers: int | None) -> tuple[torch.Tensor, dict[str, Any]]:
    """Mean logits ``[len(index.clips), C]`` of the teacher models on the training ``rows`` (other rows 0), computed
    once and cached per member (:class:`audiobench.finetune.distillation.TeacherLogits`), and its record."""
    from audiobench.cachedir import cache_subdir
    from audiobench.finetune.distillation import TeacherLogits
    from audiobench.finetune.saved import load_any

    teacher = TeacherLogits([load_any(spec).to(device) for spec in specs], cache_subdir("embeddings"))
    classes = teacher.record()["num_classes"]
    if classes != num_classes:
        raise AudiobenchError(f"The teacher ({', '.join(specs)}) predicts {classes} classes, the task has {num_classes}.",
                              hint="Distil from models with a head over the task's classes (e.g. fine-tuned ones: "
                                   "MODEL@WEIGHTS).")
    logits = teacher.compute([index.clips[int(i)] for i in rows], seconds, batch_size, workers)
    full = np.zeros((len(index.clips), num_classes), dtype=np.float32)
    full[rows] = logits
    return torch.from_numpy(full), {**teacher.record(), "specs": list(specs)}


def device_irs(recipe: ResolvedRecipe, index: DatasetIndex, sample_rate: int, seed: int) -> tuple[Any, dict | None]:
    """The DIR augmentation when the recipe uses it (clips need device groups), and its record."""
    if "dir" not in recipe["augment"]:
        return None, None
    from audiobench.finetune.device_ir import DeviceIRAugment

    if recipe["dir_folder"] is None:
        raise RecipeError(f"Recipe {recipe.name!r} applies device impulse responses but names no folder.",
                          hint="Pass --recipe-option dir_folder=PATH (e.g. shared/data/tau22/device_irs).")
    if index.groups() is None:
        raise AudiobenchError(f"Dataset {index.name!r} gives no recording device per clip, which DIR needs.",
                              hint="Remove dir from augment (--recipe-option augment=[...]).")
    augment = DeviceIRAugment.from_directory(recipe["dir_folder"], sample_rate, recipe["dir_p"], seed)
    return augment, {"folder": str(recipe["dir_folder"]), "impulse_responses": len(augment), "p": recipe["dir_p"],
                     "device": recipe["dir_device"]}
