"""Task cards: one YAML file per task in the top-level ``tasks/`` directory.

A card names the dataset, how it is split, the label type, the metric and the protocol defaults, so
adding a task is adding a card. Extra card directories can be given in ``$AUDIOBENCH_TASKS_PATH``
(``os.pathsep``-separated).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from audiobench.errors import AudiobenchError, UnknownNameError
from audiobench.resources import data_dir

LABEL_TYPES = ("multiclass", "multilabel", "events")
SPLIT_TYPES = ("folds", "fixed")


@dataclass(frozen=True)
class TaskCard:
    """A validated task card."""

    name: str
    description: str
    dataset: str
    label_type: str
    metric: str
    protocol: str
    splits: dict[str, Any]
    clip_seconds: float | None = None
    metrics: list[str] = field(default_factory=list)  # further metrics besides the primary ``metric``
    groups: dict[str, list[str]] = field(default_factory=dict)  # named sets of clip groups scored apart
    complexity_budget: dict[str, Any] = field(default_factory=dict)  # e.g. DCASE limits the record checks
    protocol_options: dict[str, Any] = field(default_factory=dict)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    homepage: str | None = None
    license: str | None = None
    path: str | None = None

    @property
    def folds(self) -> list[int]:
        """The official fold numbers (``splits.folds``)."""
        return list(self.splits.get("folds", []))

    def split_names(self, role: str) -> list[str]:
        """Names of the ``train``/``valid``/``test`` splits of a fixed-split card (a name or a list)."""
        value = self.splits.get(role) or []
        return [value] if isinstance(value, str) else list(value)

    @property
    def all_metrics(self) -> list[str]:
        """The primary metric first, then the others."""
        return [self.metric, *[m for m in self.metrics if m != self.metric]]


def parse_card(data: Any, path: Path) -> TaskCard:
    """Validate a card's fields; errors name the file and the field."""
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a YAML {type(data).__name__}"
        raise AudiobenchError(f"Task card {path} is {what}, not a mapping of fields.",
                              hint="A card is a YAML mapping with name, description, dataset, label_type, metric, "
                                   "protocol and splits; see tasks/esc50.yaml.")
    required = ("name", "description", "dataset", "label_type", "metric", "protocol", "splits")
    missing = [key for key in required if key not in data]
    if missing:
        raise AudiobenchError(f"Task card {path} lacks the field(s) {', '.join(missing)}.")
    if data["label_type"] not in LABEL_TYPES:
        raise AudiobenchError(f"Task card {path}: label_type must be one of {LABEL_TYPES}.")
    for key in ("splits", "protocol_options", "dataset_options"):
        if key in data and not isinstance(data[key], dict):
            raise AudiobenchError(f"Task card {path}: {key} must be a mapping, not {data[key]!r}.")
    if data["splits"].get("type") not in SPLIT_TYPES:
        raise AudiobenchError(f"Task card {path}: splits.type must be one of {SPLIT_TYPES}.")
    if data["splits"]["type"] == "fixed" and not (data["splits"].get("train") and data["splits"].get("test")):
        raise AudiobenchError(f"Task card {path}: fixed splits need splits.train and splits.test (split names).")
    for key, kind in (("metrics", list), ("groups", dict), ("complexity_budget", dict)):
        if key in data and not isinstance(data[key], kind):
            raise AudiobenchError(f"Task card {path}: {key} must be a {kind.__name__}, not {data[key]!r}.")
    folds = data["splits"].get("folds", [])
    if not isinstance(folds, list) or not all(isinstance(f, int) and not isinstance(f, bool) for f in folds):
        raise AudiobenchError(f"Task card {path}: splits.folds must be a list of fold numbers, not {folds!r}.")
    known = set(TaskCard.__dataclass_fields__) - {"path"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise AudiobenchError(f"Task card {path} has unknown field(s) {', '.join(unknown)}.")
    return TaskCard(**data, path=str(path))


def read_card_file(path: Path) -> Any:
    """The parsed YAML of a card file; unreadable files and invalid YAML raise errors naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise AudiobenchError(f"Task card {path} cannot be read ({error}).") from error
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe loader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or type(error).__name__
        detail = f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem
        raise AudiobenchError(f"Task card {path} is not valid YAML ({detail}).",
                              hint="Fix the YAML syntax; see tasks/esc50.yaml for an example card.") from error


def card_dirs() -> list[Path]:
    """Directories searched for task cards, built-in first."""
    extra = [Path(p) for p in os.environ.get("AUDIOBENCH_TASKS_PATH", "").split(os.pathsep) if p]
    return [data_dir("tasks"), *extra]


def load_task_cards() -> dict[str, TaskCard]:
    """All task cards by name."""
    cards: dict[str, TaskCard] = {}
    for directory in card_dirs():
        for path in sorted(directory.glob("*.yaml")):
            card = parse_card(read_card_file(path), path)
            if card.name in cards:
                raise AudiobenchError(f"Task {card.name!r} is defined twice ({cards[card.name].path} and {path}).")
            cards[card.name] = card
    return cards


def get_task(name: str) -> TaskCard:
    """The card of task ``name``; ``hear:<task directory>`` builds one from a HEAR-format task."""
    if name.startswith("hear:"):
        from audiobench.datasets.hear import hear_task_card

        return hear_task_card(Path(name[len("hear:"):]).expanduser())
    cards = load_task_cards()
    if name not in cards:
        raise UnknownNameError(f"Unknown task {name!r}.",
                               hint=f"Known tasks: {', '.join(sorted(cards))}. Run `audiobench list tasks`.")
    return cards[name]
