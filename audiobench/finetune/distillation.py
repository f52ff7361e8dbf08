"""Knowledge distillation: the two loss recipes, and teacher logits computed once and cached.

Losses (``loss = weight * label_term + (1 - weight) * distillation_term``; ``weight`` weights the
*label* term in both originals):

* ``"audioset"`` - EfficientAT ``ex_audioset.py`` (multi-label): label term = BCE-with-logits of the
  student against the (mixed) label targets; distillation term = BCE-with-logits of the student logits
  (**not** divided by T) against ``sigmoid(teacher_logits / T)``; no T^2 factor; T 1, weight 0.1.
  With mixup the teacher term is ``lam * BCE(teacher) + (1 - lam) * BCE(teacher[perm])`` per clip.
* ``"dcase23"`` - cpjku_dcase23 ``run_training.py`` (single-label): label term = cross-entropy;
  distillation term = KL(softmax(teacher / T) || softmax(student / T)) computed element-wise
  (``KLDivLoss(reduction="none", log_target=True)``) and averaged over **batch x classes** (the
  original's ``.mean()``, i.e. 1/C of the usual per-clip KL), times T^2; T 2, weight 0.02. DC23 uses no
  mixup; with ``mix`` given both terms are mixed as above (an extension).

Teacher logits: EfficientAT's ``EnsemblerModel`` averages the members' **logits** (its AudioSet teacher
file holds PaSST-ensemble logits) and cpjku_dcase23 ships "ensembled logits"; :func:`teacher_logits`
averages logits too. Each member's logits (its head's output before the activation) are cached per clip
in an :class:`audiobench.cache.EmbeddingCache` keyed like ``audiobench.embeddings.cache_for(model,
root, output="logits")``: the model fingerprint, the input pipeline and ``"output": "logits"``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from audiobench.atomic import atomic_write_bytes
from audiobench.cache import EmbeddingCache, stable_hash
from audiobench.datasets.base import Clip
from audiobench.embeddings import extract_embeddings
from audiobench.errors import AudiobenchError
from audiobench.models.base import AudioModel
from audiobench.output_cache import cache_for_fingerprint

__all__ = ["DistillationKind", "DISTILLATION_KINDS", "distillation_terms", "distillation_loss",
           "logits_cache", "model_logits", "TeacherLogits", "teacher_logits"]

LOGITS = "logits"
Mix = tuple[torch.Tensor, torch.Tensor]  # (perm [B], lam [B]) of a mixup step, e.g. MixResult.perm / .lam


def _mixed(per_clip: Callable[[torch.Tensor], torch.Tensor], target: torch.Tensor, mix: Mix | None) -> torch.Tensor:
    """Mean over clips of ``per_clip(target)``, or of its mixup combination with ``target[perm]``."""
    if mix is None:
        return per_clip(target).mean()
    perm, lam = mix[0].to(target.device), mix[1].to(target.device).reshape(-1)
    return (lam * per_clip(target) + (1 - lam) * per_clip(target[perm])).mean()


def _audioset_terms(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor, temperature: float,
                    mix: Mix | None) -> tuple[torch.Tensor, torch.Tensor]:
    def bce(target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(student, target.to(student.dtype), reduction="none").mean(dim=1)

    return _mixed(bce, targets, mix), _mixed(bce, torch.sigmoid(teacher / temperature), mix)


def _dcase23_terms(student: torch.Tensor, teacher: torch.Tensor, targets: torch.Tensor, temperature: float,
                   mix: Mix | None) -> tuple[torch.Tensor, torch.Tensor]:
    log_student = F.log_softmax(student / temperature, dim=-1)

    def cross_entropy(target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(student, target, reduction="none")

    def kl(log_teacher: torch.Tensor) -> torch.Tensor:  # mean over classes: DC23's .mean() over B x C
        return F.kl_div(log_student, log_teacher, reduction="none", log_target=True).mean(dim=1)

    log_teacher = F.log_softmax(teacher / temperature, dim=-1)
    return _mixed(cross_entropy, targets, mix), _mixed(kl, log_teacher, mix) * temperature**2


@dataclass(frozen=True)
class DistillationKind:
    """One recipe's distillation loss: its terms, default temperature and label weight, and its source."""

    name: str
    terms: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    temperature: float
    weight: float  # weight of the label term; the distillation term gets 1 - weight
    source: str


DISTILLATION_KINDS: dict[str, DistillationKind] = {
    "audioset": DistillationKind("audioset", _audioset_terms, 1.0, 0.1, "EfficientAT ex_audioset.py"),
    "dcase23": DistillationKind("dcase23", _dcase23_terms, 2.0, 0.02, "cpjku_dcase23 run_training.py"),
}


def _kind(name: str) -> DistillationKind:
    if name not in DISTILLATION_KINDS:
        raise AudiobenchError(f"Unknown distillation kind {name!r}.",
                              hint=f"Use one of: {', '.join(sorted(DISTILLATION_KINDS))}.")
    return DISTILLATION_KINDS[name]


def distillation_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                       kind: str = "dcase23", temperature: float | None = None,
                       mix: Mix | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Unweighted (label term, distillation term) of ``kind`` (see the module docstring).

    ``targets``: class indices ``[B]`` for ``"dcase23"``, multi-hot floats ``[B, C]`` for ``"audioset"``.
    ``mix = (perm, lam)`` applies a mixup step's pairing to the label and teacher targets.
    """
    recipe = _kind(kind)
    t = recipe.temperature if temperature is None else temperature
    return recipe.terms(student_logits, teacher_logits.to(student_logits.dtype), targets, t, mix)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      kind: str = "dcase23", temperature: float | None = None, weight: float | None = None,
                      mix: Mix | None = None) -> torch.Tensor:
    """``weight * label_term + (1 - weight) * distillation_term``; None takes the recipe's T and weight."""
    recipe = _kind(kind)
    w = recipe.weight if weight is None else weight
    if not 0.0 <= w <= 1.0:
        raise AudiobenchError(f"Distillation weight {w} is outside [0, 1].",
                              hint=f"It weights the label loss; the {recipe.source} default is {recipe.weight}.")
    label, distill = distillation_terms(student_logits, teacher_logits, targets, kind, temperature, mix)
    return w * label + (1 - w) * distill


# --- teacher logits, computed once ----------------------------------------------------------------------


def _num_classes(model: AudioModel) -> int:
    if not model.card.num_classes:
        raise AudiobenchError(f"Model {model.card.name!r} has no pretrained classification head, so it "
                              f"cannot be a teacher.", hint="Use a model with a head (e.g. a fine-tuned checkpoint).")
    return int(model.card.num_classes)


def logits_cache(model: AudioModel, root: Path) -> EmbeddingCache:
    """Cache of ``model``'s head logits under ``root``, keyed as ``cache_for(model, root, output="logits")``."""
    return cache_for_fingerprint(model.fingerprint(), model.sample_rate, _num_classes(model), Path(root), LOGITS)


def model_logits(model: AudioModel, clips: Sequence[Clip], seconds: float | None, root: Path,
                 batch_size: int = 32, num_workers: int | None = None) -> np.ndarray:
    """Head logits ``[len(clips), num_classes]`` of one model (eval mode), computed once and cached."""
    cache = logits_cache(model, root)
    was_training = model.training
    model.eval()
    try:
        return extract_embeddings(model, clips, seconds, cache, batch_size, num_workers, output=LOGITS)[0]
    finally:
        model.train(was_training)


class TeacherLogits:
    """A teacher (one model or an ensemble): the mean of its members' logits, each member's cached.

    ``record()`` describes the teacher (members' fingerprints and cache keys, how they are combined);
    :meth:`compute` also writes it to ``<root>/teachers/<key>.json``.
    """

    combine = "mean of logits"

    def __init__(self, models: Sequence[AudioModel], root: Path) -> None:
        if not models:
            raise AudiobenchError("A teacher needs at least one model, got none.", hint="Pass one or more models.")
        sizes = {model.card.name: _num_classes(model) for model in models}
        if len(set(sizes.values())) > 1:
            raise AudiobenchError(f"Teacher members have different numbers of classes: {sizes}.",
                                  hint="Ensemble only models with heads over the same classes.")
        self.models, self.root = list(models), Path(root)
        self.caches = [logits_cache(model, self.root) for model in self.models]

    @property
    def key(self) -> str:
        """Identity of the teacher: hash of its members' cache keys (order-independent)."""
        return stable_hash({"members": sorted(c.model_key for c in self.caches), "combine": self.combine})[:24]

    def record(self) -> dict[str, Any]:
        """Members (name, cache key, fingerprint) and how their logits are combined."""
        members = [{"model": m.card.name, "cache_key": c.model_key, "fingerprint": c.fingerprint}
                   for m, c in zip(self.models, self.caches)]
        return {"teacher_key": self.key, "combine": self.combine, "num_classes": self.caches[0].shape[0],
                "members": members}

    def compute(self, clips: Sequence[Clip], seconds: float | None, batch_size: int = 32,
                num_workers: int | None = None) -> np.ndarray:
        """Teacher logits ``[len(clips), num_classes]`` (float32); members' logits are reused from the cache."""
        total = None
        for model in self.models:
            logits = model_logits(model, clips, seconds, self.root, batch_size, num_workers).astype(np.float64)
            total = logits if total is None else total + logits
        path = self.root / "teachers" / f"{self.key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(self.record(), indent=1, sort_keys=True, default=str).encode())
        return (total / len(self.models)).astype(np.float32)


def teacher_logits(models: Sequence[AudioModel], clips: Sequence[Clip], seconds: float | None, root: Path,
                   batch_size: int = 32, num_workers: int | None = None) -> np.ndarray:
    """Mean logits of ``models`` for ``clips`` (cached per member under ``root``; see :class:`TeacherLogits`)."""
    return TeacherLogits(models, root).compute(clips, seconds, batch_size, num_workers)
