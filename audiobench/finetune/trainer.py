"""Fine-tune a model on one split: the whole network trains with a new head, one checkpoint per epoch.

:class:`FineTuner` holds what every split shares (the pretrained model, the data, the recipe, the device);
:meth:`FineTuner.fit` trains a fresh copy for one split, resuming from its checkpoint when asked, and returns
the model of the epoch the recipe evaluates (the last, or the best on the split's validation clips).

Determinism: the split's head is initialised and trained inside ``torch.random.fork_rng`` with seeds derived
from ``(seed, split)``; the order of each epoch's clips from ``(seed, split, epoch)``; augmentations draw from
one explicit generator whose state, with every global random state, goes into the checkpoint. On CPU a resumed
run therefore equals an uninterrupted one bit for bit. On CUDA, mixed precision (fp16 autocast + GradScaler)
is used when the recipe says ``amp: true``.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from audiobench.errors import AudiobenchError
from audiobench.finetune.checkpointing import check_same_config, load_state, restore_rng, rng_state, save_state
from audiobench.finetune.data import ClipTargets, WaveformSource, derived_seed
from audiobench.finetune.head import replace_head
from audiobench.finetune.pipeline import Augmenter, Batch, Objective
from audiobench.finetune.schedules import ExpWarmupLinearDown, exp_warmup_linear_down_scheduler
from audiobench.forward_chunks import forward_chunk, forward_in_chunks
from audiobench.models.base import AudioModel

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, Any], torch.optim.lr_scheduler.LRScheduler]] = {
    "exp_warmup_linear_down": lambda opt, r: exp_warmup_linear_down_scheduler(
        opt, r["warm_up_len"], r["ramp_down_start"], r["ramp_down_len"], r["last_lr_value"]),
    "constant": lambda opt, r: torch.optim.lr_scheduler.LambdaLR(opt, ExpWarmupLinearDown(0, 0, 0, 1.0)),
}
HEAD_SEED, AUGMENT_SEED, DIR_SEED, ORDER_SEED = 11, 12, 13, 14  # stream ids of derived_seed


@dataclass
class SplitJob:
    """The clips of one split: training rows, validation rows (or None), and the split's name and number."""

    name: str
    number: int
    train: np.ndarray
    valid: np.ndarray | None = None


@dataclass
class SplitOutcome:
    """What training one split gave: per-epoch history, which epoch's model is evaluated and why."""

    history: list[dict[str, Any]]
    evaluated_epoch: int
    selection: str
    resumed_from_epoch: int | None = None
    valid_clips: int = 0


@dataclass
class FineTuner:
    """Everything the splits of one run share.

    ``validate(model, rows) -> float`` scores validation clips with the task's main metric;
    ``better(a, b)`` says whether score ``a`` beats ``b``; ``report(text)`` tells the user.
    """

    base: AudioModel
    recipe: Any
    source: WaveformSource
    targets: ClipTargets
    device: torch.device
    seed: int
    num_classes: int
    label_type: str
    task: str
    validate: Callable[[AudioModel, np.ndarray], float] | None = None
    better: Callable[[float, float], bool] = lambda a, b: bool(a > b)
    report: Callable[[str], None] = lambda text: None
    teacher_logits: torch.Tensor | None = None
    device_irs: Any = None

    @property
    def amp(self) -> bool:
        """Mixed precision: the recipe asks for it and the device is a GPU."""
        return bool(self.recipe["amp"]) and self.device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext()

    def new_model(self) -> AudioModel:
        """A copy of the pretrained model with a fresh head of the task's classes (global torch RNG: seed it)."""
        model = replace_head(copy.deepcopy(self.base), self.num_classes, self.label_type, self.task)
        t, f = self.recipe["patchout_t"], self.recipe["patchout_f"]
        if t is not None or f is not None:
            from audiobench.finetune.patchout import configure_patchout, passt_network

            config = passt_network(model).config
            configure_patchout(model, config.s_patchout_t if t is None else t, config.s_patchout_f if f is None else f)
        return model.to(self.device)

    def _weights(self, rows: np.ndarray) -> np.ndarray | None:
        if self.recipe["sampler"] != "class_balanced":
            return None
        from audiobench.finetune.sampling import class_balanced_weights

        return class_balanced_weights(self.targets.soft[rows], self.recipe["balanced_offset"]).numpy()

    def _step(self, model: AudioModel, parts: dict[str, Any], augmenter: Augmenter, objective: Objective,
              rows: list[int], waveforms: torch.Tensor) -> float:
        device = self.device
        soft = torch.from_numpy(self.targets.soft[rows]).to(device)
        mask = None if self.targets.mask is None else torch.from_numpy(self.targets.mask[rows]).to(device)
        device_a = (None if self.targets.groups is None else
                    torch.from_numpy(self.targets.groups[rows] == self.recipe["dir_device"]))
        batch = Batch(x=waveforms.to(device, non_blocking=True), targets=soft, unmixed=soft, device_a=device_a)
        with self.autocast():
            batch = augmenter.waveforms(batch)
            batch = Batch(model.input_stage()(batch.x), batch.targets, batch.unmixed, batch.mix, batch.device_a)
            batch = augmenter.spectrograms(batch)
            logits = model.logits_inputs(batch.x)
        loss = objective(logits.float(), batch, rows, mask)
        optimizer, scaler = parts["optimizer"], parts["scaler"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return float(loss.detach())

    def score(self, model: AudioModel, rows: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Head outputs after the task's activation ``[len(rows), C]`` (mean over a clip's segments)."""
        model.eval()
        stage = model.input_stage()
        out = [np.zeros((0, self.num_classes), np.float32)]
        with torch.inference_mode(), self.autocast():
            for _, waveforms in self.source.ordered(rows, batch_size or self.recipe["eval_batch_size"]
                                                    or self.recipe["batch_size"]):
                chunk = forward_chunk(self.device, len(waveforms), waveforms.shape[-1])
                scores = forward_in_chunks(lambda part: model.head_inputs(stage(part.to(self.device))), waveforms, chunk)
                out.append(scores.float().cpu().numpy())
        return np.concatenate(out)

    def _parts(self, model: AudioModel) -> dict[str, Any]:
        r = self.recipe
        optimizer = OPTIMIZERS[r["optimizer"]](model.network.parameters(), lr=r["lr"], weight_decay=r["weight_decay"])
        return {"optimizer": optimizer, "scheduler": SCHEDULES[r["schedule"]](optimizer, r),
                "scaler": torch.amp.GradScaler("cuda", enabled=self.amp)}

    def fit(self, job: SplitJob, state_path: Path, config: dict[str, Any], resume: bool = False,
            advance: Callable[[int], None] = lambda n: None) -> tuple[AudioModel, SplitOutcome]:
        """Train a fresh copy of the model on ``job``; return the model of the evaluated epoch and the outcome."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(derived_seed(self.seed, job.number, HEAD_SEED))
            return self._fit(job, state_path, config, resume, advance)

    def _fit(self, job: SplitJob, state_path: Path, config: dict[str, Any], resume: bool,
             advance: Callable[[int], None]) -> tuple[AudioModel, SplitOutcome]:
        r = self.recipe
        if not len(job.train):
            raise AudiobenchError(f"Split {job.name!r} has no training clips.", hint="Check the task's split plan.")
        if r["evaluate_epoch"] == "best-on-validation" and (job.valid is None or not len(job.valid)):
            raise AudiobenchError(f"Split {job.name!r} has no validation clips, so the best epoch cannot be chosen.",
                                  hint="Use --recipe-option evaluate_epoch=last, or a task with a validation split.")
        model = self.new_model()
        parts = self._parts(model)
        generator = torch.Generator().manual_seed(derived_seed(self.seed, job.number, AUGMENT_SEED))
        if self.device_irs is not None:
            self.device_irs.generator.manual_seed(derived_seed(self.seed, job.number, DIR_SEED))
        augmenter, objective = Augmenter(r, generator, self.device_irs), Objective(r, self.teacher_logits)
        history: list[dict[str, Any]] = []
        best: dict[str, Any] | None = None
        start, resumed = 0, None
        if resume and state_path.is_file():
            state = load_state(state_path)
            check_same_config(state_path, state["config"], config)
            model.network.load_state_dict(state["model"])
            for name in ("optimizer", "scheduler", "scaler"):
                parts[name].load_state_dict(state[name])
            restore_rng(state["rng"])
            generator.set_state(state["generator"])
            if self.device_irs is not None:
                self.device_irs.generator.set_state(state["dir_generator"])
            start = resumed = int(state["epoch"])
            history, best = list(state["history"]), state["best"]
            advance(start)
            self.report(f"{job.name}: resumed after epoch {start} from {state_path}")
        weights = self._weights(job.train)
        for epoch in range(start, r["epochs"]):
            model.train()
            lr = parts["optimizer"].param_groups[0]["lr"]
            losses = [self._step(model, parts, augmenter, objective, rows, waveforms) for rows, waveforms in
                      self.source.training(job.train, r["batch_size"], derived_seed(self.seed, job.number, epoch,
                                                                                      ORDER_SEED),
                                           r["samples_per_epoch"], weights)]
            parts["scheduler"].step()
            loss = float(np.mean(losses)) if losses else float("nan")
            if not math.isfinite(loss) and not self.amp:
                raise AudiobenchError(f"Split {job.name!r}: the training loss is {loss} in epoch {epoch + 1}.",
                                      hint="Lower the learning rate (--recipe-option lr=...) or check the data.")
            entry: dict[str, Any] = {"epoch": epoch + 1, "train_loss": loss, "lr": lr, "steps": len(losses)}
            if job.valid is not None and len(job.valid) and self.validate is not None:
                entry["valid"] = float(self.validate(model, job.valid))
                if best is None or self.better(entry["valid"], best["score"]):
                    best = {"epoch": epoch + 1, "score": entry["valid"],
                            "model": {k: v.detach().cpu().clone() for k, v in model.network.state_dict().items()}}
            history.append(entry)
            save_state(state_path, {
                "config": config, "epoch": epoch + 1, "model": model.network.state_dict(),
                **{name: parts[name].state_dict() for name in ("optimizer", "scheduler", "scaler")},
                "rng": rng_state(), "generator": generator.get_state(),
                "dir_generator": self.device_irs.generator.get_state() if self.device_irs is not None else None,
                "history": history, "best": best})
            valid = f", validation {entry['valid']:.4f}" if "valid" in entry else ""
            self.report(f"{job.name} epoch {epoch + 1}/{r['epochs']}: loss {loss:.4f}, lr {lr:.3g}{valid}")
            advance(1)
        evaluated, selection = len(history), "last epoch"
        if r["evaluate_epoch"] == "best-on-validation" and best is not None:
            model.network.load_state_dict(best["model"])
            evaluated, selection = int(best["epoch"]), "best epoch on the validation clips"
        outcome = SplitOutcome(history=history, evaluated_epoch=evaluated, selection=selection,
                               resumed_from_epoch=resumed, valid_clips=0 if job.valid is None else len(job.valid))
        return model.eval(), outcome
