"""The runner path of ``--protocol finetune``: per split, train the whole network with a new head for the task,
score the split's test clips, save the weights with their card; then one record and one predictions file, as
the probe protocols write them (so ``audiobench rescore`` recomputes every metric)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from audiobench.datasets.base import DatasetIndex
from audiobench.errors import AudiobenchError, ProtocolError
from audiobench.predictions import Predictions
from audiobench.tasks import TaskCard

PROTOCOL = "finetune"


def split_predictions(index: DatasetIndex, rows: np.ndarray, split: str, scores: np.ndarray) -> Predictions:
    """Predictions of ``rows`` scored in ``split`` (targets, masks and groups from the index)."""
    targets, masks, groups = index.targets(), index.masks(), index.groups()
    return Predictions(clip_id=[index.clips[int(i)].clip_id for i in rows], split=[split] * len(rows),
                       target=targets[rows], scores=scores, classes=index.classes,
                       mask=None if masks is None else masks[rows], group=None if groups is None else groups[rows])


def concatenate(parts: list[Predictions], index: DatasetIndex) -> Predictions:
    """One predictions table from the splits' tables."""
    def joined(name: str) -> Any:
        values = [getattr(p, name) for p in parts]
        return None if not parts or values[0] is None else np.concatenate(values)

    if not parts:
        raise ProtocolError(f"{index.name}: the split plan has no splits.", hint="Check the task card's splits.")
    return Predictions(clip_id=joined("clip_id"), split=joined("split"), target=joined("target"),
                       scores=joined("scores"), classes=index.classes, mask=joined("mask"), group=joined("group"))


def _validator(index: DatasetIndex, metric_name: str, tuner: Any) -> Any:
    from audiobench.predictions import score_splits
    from audiobench.registry import METRICS

    metric = METRICS.get(metric_name)

    def validate(model: Any, rows: np.ndarray) -> float:
        return score_splits(split_predictions(index, rows, "valid", tuner.score(model, rows)), metric)["valid"]

    return validate


def _better(metric_name: str) -> Any:
    from audiobench.report.leaderboard import metric_direction

    higher = metric_direction(metric_name) == "higher"
    return lambda a, b: bool(a > b) if higher else bool(a < b)  # NaN never wins


def run_finetune(options: Any, card: TaskCard, reporter: Any = None) -> tuple[dict[str, Any], Path]:
    """``audiobench run --protocol finetune``; returns the record and its path."""
    import copy

    import torch

    from audiobench import provenance
    from audiobench.cache import stable_hash
    from audiobench.cachedir import cache_subdir
    from audiobench.complexity import cached_complexity
    from audiobench.device import resolve_device
    from audiobench.embeddings import compute_threads
    from audiobench.finetune import setup
    from audiobench.finetune.data import ClipTargets, derived_seed
    from audiobench.finetune.head import ACTIVATIONS, replace_head
    from audiobench.finetune.pipeline import check_objective
    from audiobench.finetune.recipes import resolve_recipe
    from audiobench.finetune.saved import save_finetuned
    from audiobench.finetune.trainer import FineTuner, SplitJob
    from audiobench.model_outputs import model_block
    from audiobench.models.descriptor import has_released_weights
    from audiobench.registry import MODELS
    from audiobench.report.rescore import score_record_metrics
    from audiobench.results import check_writable, read_record, write_record
    from audiobench.runner import Reporter, _derived, _splits, load_task_index, record_head

    reporter = reporter or Reporter()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    check_writable(options.output_dir)
    if getattr(options, "precision", "fp32") != "fp32":
        raise ProtocolError(f"--precision {options.precision} applies to the frozen-model protocols; fine-tuning "
                            "takes its precision from the recipe (amp: fp16 autocast with a gradient scaler on "
                            "CUDA, fp32 on CPU).", hint="Leave out --precision (--recipe-option amp=false trains "
                                                       "in fp32).")
    if options.probe_options:
        raise ProtocolError(f"Probe options ({', '.join(sorted(options.probe_options))}, e.g. --probe-c) do not apply "
                            "to fine-tuning.", hint="Set training fields with --recipe-option KEY=VALUE.")
    if card.label_type not in ACTIVATIONS:
        raise ProtocolError(f"Task {card.name!r} is {card.label_type}; fine-tuning trains clip classifiers "
                            f"({', '.join(ACTIVATIONS)}).", hint="Use a frame protocol for event tasks.")
    has_released_weights(options.model)  # an unknown model name fails here
    family = MODELS.entry(options.model).info.family
    recipe = resolve_recipe(options.recipe, family, card.name, options.recipe_options, options.epochs)
    if not recipe.task_in_recipe:
        reporter.message(f"recipe {recipe.name} was written for {', '.join(recipe.applies_to.get('tasks', []))}, "
                         f"used here on {card.name}")
    check_objective(recipe, card.label_type)
    index, dataset_options = load_task_index(card, options)
    plan = _splits(card, index, options)
    seconds = recipe["clip_seconds"] or card.clip_seconds
    if seconds is None:
        raise ProtocolError(f"Task {card.name!r} has clips of varying length; fine-tuning needs one length.",
                            hint="Pass --recipe-option clip_seconds=10 (clips are cut or zero-padded to it).")
    reporter.message(f"{card.name}: {len(index.clips)} clips, {len(plan.splits)} splits ({plan.description}); "
                     f"recipe {recipe.name}, {recipe['epochs']} epoch{'s' if recipe['epochs'] != 1 else ''}")

    t0 = time.perf_counter()
    device = torch.device(resolve_device(options.device))
    base = setup.base_model(options.model, options.checkpoint, recipe, options.seed)
    classes = len(index.classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived_seed(options.seed, 0))
        described = replace_head(copy.deepcopy(base), classes, card.label_type, card.name)
    timings["load_model_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    complexity = cached_complexity(described)
    timings["complexity_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    targets = ClipTargets.of(index)
    source, threads, audio = setup.waveform_source(index, base.sample_rate, seconds, device, options.threads,
                                                   options.num_workers)
    teacher, teacher_record = None, None
    if recipe["teacher"]:
        rows = np.unique(np.concatenate([np.asarray(s.train) for s in plan.splits]))
        teacher, teacher_record = setup.teacher_logits(recipe["teacher"], index, rows, seconds, classes, device,
                                                       options.batch_size, options.num_workers)
    irs, irs_record = setup.device_irs(recipe, index, base.sample_rate, options.seed)
    timings["setup_s"] = time.perf_counter() - t0

    tuner = FineTuner(base=base, recipe=recipe, source=source, targets=targets, device=device, seed=options.seed,
                      num_classes=classes, label_type=card.label_type, task=card.name, better=_better(card.metric),
                      report=reporter.message, teacher_logits=teacher, device_irs=irs)
    tuner.validate = _validator(index, card.metric, tuner)
    identity = {"task": card.name, "model": options.model, "seed": options.seed, "plan": plan.description,
                "checkpoint": str(options.checkpoint) if options.checkpoint else None,
                "clips": index.manifest()["clip_list_sha256"]}
    run_key = stable_hash(identity)[:16]
    state_dir = cache_subdir("finetune") / f"{card.name}__{options.model}__{run_key}"
    weights_dir = (Path(options.output_dir) / "finetuned"
                   / f"{card.name}__{options.model}__{recipe.name}__{stable_hash([run_key, recipe.values])[:12]}")
    if options.resume and not any((state_dir / f"{s.name}.pt").is_file() for s in plan.splits):
        raise AudiobenchError(f"--resume: no fine-tuning checkpoint of {options.model} on {card.name} (seed "
                              f"{options.seed}) under {state_dir}.", hint="Run without --resume to start training.")

    t0 = time.perf_counter()
    parts, splits_block = [], {}
    with reporter.progress(f"finetune {options.model} ({recipe.name}) on {len(plan.splits)} splits",
                           recipe["epochs"] * len(plan.splits)) as advance, compute_threads(threads):
        for number, split in enumerate(plan.splits):
            job = SplitJob(split.name, number, np.asarray(split.train),
                           None if split.valid is None else np.asarray(split.valid))
            config = {"identity": identity, "recipe": recipe.name, "values": recipe.values, "split": split.name,
                      "train_clips": stable_hash(sorted(index.clips[int(i)].clip_id for i in job.train)),
                      "device": device.type, "amp": tuner.amp}
            model, outcome = tuner.fit(job, state_dir / f"{split.name}.pt", config, options.resume, advance)
            test = np.asarray(split.test)
            found = split_predictions(index, test, split.name, tuner.score(model, test))
            score = score_record_metrics(found, [card.metric])[card.metric]["per_split"][split.name]
            weights = weights_dir / f"{split.name}.pt"
            sha256 = save_finetuned(model, weights, {
                "task": card.name, "label_type": card.label_type, "classes": list(index.classes),
                "parent": {"model": options.model, "checkpoint_sha256": base.checkpoint_sha256,
                           "checkpoint_file": Path(base.checkpoint_path).name if base.checkpoint_path else None},
                "recipe": recipe.describe(), "seed": options.seed,
                "data": {"dataset": index.name, "clip_list_sha256": identity["clips"], "split": split.name,
                         "plan": plan.description, "train_clips": len(job.train), "test_clips": len(test)},
                "evaluated_epoch": outcome.evaluated_epoch, "score": {card.metric: score}})
            splits_block[split.name] = {
                "evaluated_epoch": outcome.evaluated_epoch, "selection": outcome.selection,
                "epochs_trained": len(outcome.history), "resumed_from_epoch": outcome.resumed_from_epoch,
                "train_clips": len(job.train), "valid_clips": outcome.valid_clips, "test_clips": len(test),
                "history": outcome.history, "weights": str(weights), "weights_sha256": sha256}
            parts.append(found)
    timings["protocol_s"] = time.perf_counter() - t0
    predictions = concatenate(parts, index)
    metrics = score_record_metrics(predictions, card.all_metrics, card.groups)  # what `rescore` recomputes
    timings["total_s"] = time.perf_counter() - started

    protocol = {"name": PROTOCOL, "recipe": recipe.name, "recipe_source": recipe.source, "epochs": recipe["epochs"],
                "evaluated_epoch": recipe["evaluate_epoch"], "init": recipe["init"], "seed": options.seed,
                "recipe_overrides": recipe.overrides}
    if recipe.overrides:  # not the published recipe: never ranked beside official results
        protocol.update(official=False, non_official_reason=f"recipe {recipe.name} overridden: "
                        + ", ".join(f"{key}={value}" for key, value in sorted(recipe.overrides.items())))
    record = {
        **record_head(card, plan, protocol, {**model_block(described, options.model), "head_classes": classes},
                      complexity),
        "metrics": metrics,
        **_derived(card, complexity, metrics, predictions.group is not None),
        "dataset": {**index.manifest(), "data_dir": str(options.data_dir) if options.data_dir else None,
                    **({"options": dataset_options} if dataset_options else {})},
        "finetune": {"recipe": recipe.describe(), "splits": splits_block, "device": str(device),
                     "precision": "fp16 autocast + GradScaler" if tuner.amp else "fp32",
                     "clip_seconds": seconds, "threads": threads.describe(), "audio_cache": audio is not None,
                     "resume": bool(options.resume), "checkpoints": str(state_dir), "weights_dir": str(weights_dir),
                     "teacher": teacher_record, "device_irs": irs_record},
        "timings": timings,
        "provenance": provenance.collect(str(device), options.seed),
    }
    path = write_record(record, options.output_dir, predictions)
    return read_record(path), path
