"""The split loop of a probe protocol: train on each split's training clips, score its test clips."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from audiobench.datasets.base import DatasetIndex
from audiobench.predictions import Predictions
from audiobench.protocols.splits import SplitPlan


def evaluate_probe(probe: Any, features: np.ndarray, index: DatasetIndex, plan: SplitPlan,
                   advance: Callable[[int], None] = lambda n: None) -> Predictions:
    """Predictions for the test clips of every split of ``plan`` (the training split's labels only are seen)."""
    targets, masks, groups = index.targets(), index.masks(), index.groups()
    tested, names, scores = [], [], []
    for split in plan.splits:
        extra = {} if masks is None else {"mask": masks[split.train]}
        _, split_scores = probe.fit_predict(features[split.train], targets[split.train], features[split.test],
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
