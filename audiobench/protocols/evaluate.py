"""The split loop of a probe protocol: train on each split's training clips, score its test clips."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from audiobench.datasets.base import DatasetIndex
from audiobench.predictions import Predictions
from audiobench.protocols.splits import SplitPlan


def evaluate_probe(probe: Any, features: np.ndarray, index: DatasetIndex, plan: SplitPlan,
                   advance: Callable[[int], None] = lambda n: None) -> Predictions:
    """Predictions for the test clips of every split of ``plan`` (the training split's labels only are seen).

    Probes that select on validation data (``uses_validation``) get the split's validation clips, or, for
    fold plans without them, the next fold's clips (taken out of the training clips), as the HEAR kit does.
    """
    targets, masks, groups = index.targets(), index.masks(), index.groups()
    tested, names, scores = [], [], []
    for number, split in enumerate(plan.splits):
        train, valid = split.train, split.valid
        if getattr(probe, "uses_validation", False) and valid is None and len(plan.splits) > 1:
            # HEAR k-fold convention: the next fold validates, the remaining folds train
            valid = np.intersect1d(plan.splits[(number + 1) % len(plan.splits)].test, train)
            train = np.setdiff1d(train, valid)
        extra: dict[str, Any] = {} if masks is None else {"mask": masks[train]}
        if getattr(probe, "uses_validation", False) and valid is not None and len(valid):
            extra.update(x_valid=features[valid], y_valid=targets[valid])
            if masks is not None:
                extra["mask_valid"] = masks[valid]
        _, split_scores = probe.fit_predict(features[train], targets[train], features[split.test],
                                            num_classes=len(index.classes), **extra)
        tested.append(split.test)
        names += [split.name] * len(split.test)
        scores.append(split_scores)
        advance(1)
    rows = np.concatenate(tested) if tested else np.zeros(0, dtype=int)
    return Predictions(clip_id=[index.clips[i].clip_id for i in rows], split=names, target=targets[rows],
                       scores=np.concatenate(scores) if scores else np.zeros((0, len(index.classes)), np.float32),
                       classes=index.classes, mask=None if masks is None else masks[rows],
                       group=None if groups is None else groups[rows])
