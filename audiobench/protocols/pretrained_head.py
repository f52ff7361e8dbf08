"""``pretrained-head``: score a task with a model's own released head, where its classes are the task's.

No training: the head's probabilities for the task's classes (matched by class name) are the scores of
every test clip (e.g. AudioSet models on the AudioSet eval set, CP-Mobile on TAU22). Training clips are
ignored. Class names are compared exactly, then case- and punctuation-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audiobench.errors import ProtocolError


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()


def class_columns(task_classes: list[str], model_classes: list[str], model: str = "the model") -> np.ndarray:
    """Index of every task class among the head's classes (error naming the classes the head lacks)."""
    exact = {name: i for i, name in enumerate(model_classes)}
    loose = {_normalise(name): i for i, name in enumerate(model_classes)}
    columns, missing = [], []
    for name in task_classes:
        column = exact.get(name, loose.get(_normalise(name)))
        if column is None:
            missing.append(name)
        columns.append(column)
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        raise ProtocolError(f"The pretrained head of {model} has no class {shown} of this task.",
                            hint="Use a probe protocol (linear-probe) instead, or a model trained on the task's classes.")
    return np.array(columns, dtype=int)


@dataclass
class PretrainedHead:
    """A 'probe' that does not train: picks the task's columns of the head's probabilities."""

    columns: np.ndarray
    head: str = ""
    seed: int = 0
    notes: list[str] = field(default_factory=list)

    output = "head"  # what the runner extracts per clip for this protocol (the head's probabilities)
    trains = False  # training clips are never read: the runner extracts outputs for the test clips only

    @classmethod
    def for_model(cls, model: Any, index: Any, seed: int = 0, **unused: Any) -> "PretrainedHead":
        """The protocol for ``model``'s head on the classes of dataset ``index``."""
        from pathlib import Path

        from audiobench.labels import resolve_labels

        card = model.card
        if not card.num_classes:
            raise ProtocolError(f"Model {card.name!r} has no pretrained classification head.",
                                hint="Use --protocol linear-probe.")
        names, warning = (resolve_labels(card.label_set, card.num_classes, checkpoint=Path(model.checkpoint_path)
                                         if model.checkpoint_path else None) if card.label_set else ([], None))
        if warning or not names:
            raise ProtocolError(f"The class names of {card.name!r}'s head are not available, so its classes cannot be "
                                f"matched to the task's.", hint=warning or "Use --protocol linear-probe.")
        head = f"{card.name} head ({card.num_classes} classes, {card.output_activation or 'sigmoid'})"
        return cls(columns=class_columns(list(index.classes), names, card.name), head=head, seed=seed)

    def fit_predict(self, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                    num_classes: int | None = None, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``x_test`` are head probabilities ``[N, num_model_classes]``; returns (top-1, task-class scores)."""
        scores = np.ascontiguousarray(x_test[:, self.columns], dtype=np.float32)
        return scores.argmax(axis=1), scores

    def describe(self) -> dict[str, object]:
        """Settings for the result record."""
        return {"name": "pretrained-head", "head": self.head or "the model's released classification head",
                "training": "none (training clips are not used)",
                "class_matching": "task classes matched to the head's classes by name"}
