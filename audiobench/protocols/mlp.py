"""The HEAR downstream protocol: a small MLP on frozen embeddings, chosen by a random grid search.

As hear-eval-kit (``heareval/predictions/task_predictions.py``): the MLP is
``[Linear -> BatchNorm1d -> Dropout -> ReLU] x hidden_layers -> Linear`` (weights initialised with the
grid's Xavier variant, gain 1 for the first layer and sqrt(2) after a ReLU); softmax + cross entropy for
single-label tasks, sigmoid + BCE (masked: unknown labels weigh 0) for multi-label ones; Adam, mini-batches
of 1024, at most 500 epochs, the validation score every 3 epochs, early stopping after 20 checks without
improvement and the weights of the best check kept. ``grid_points`` (8) points of the grid (hidden_layers
{1, 2} x hidden_dim {1024} x dropout {0.1} x lr {3.2e-3, 1e-3, 3.2e-4, 1e-4} x init {xavier_uniform,
xavier_normal}) are drawn in a seeded random order; the point with the best validation score is used.
As in the kit, the grid is searched on the first split only and its winner trains the other splits
(``select="every-split"`` searches on each split).

Differences from the kit: features are standardised with the training split's statistics (the kit feeds
raw embeddings); training batches are reshuffled each epoch with a seeded generator; without a validation
set a seeded stratified ``valid_fraction`` of the training split is held out for selection.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from audiobench.errors import ProtocolError

INITS = ("xavier_uniform", "xavier_normal")


def _floats(name: str, values: Any) -> tuple[float, ...]:
    values = values if isinstance(values, (list, tuple)) else [values]
    try:
        return tuple(float(v) for v in values)  # YAML reads 1e-4 (no dot) as a string
    except (TypeError, ValueError):
        raise ProtocolError(f"mlp-probe option {name} must be numbers, got {values!r}.") from None


def _ints(name: str, values: Any) -> tuple[int, ...]:
    values = values if isinstance(values, (list, tuple)) else [values]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise ProtocolError(f"mlp-probe option {name} must be non-negative whole numbers, got {values!r}.")
    return tuple(values)


def carve_validation(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows): a seeded ``fraction`` of every class held out (at least one clip of
    each class stays in training); multi-hot ``y`` is split at random."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    if y.ndim == 2:
        order = rng.permutation(len(y))
        n_valid = min(max(1, int(round(fraction * len(y)))), len(y) - 1)
        return np.sort(order[n_valid:]), np.sort(order[:n_valid])
    valid = []
    for label in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == label))
        valid.append(rows[:min(int(round(fraction * len(rows))), len(rows) - 1)])
    held = np.sort(np.concatenate(valid)) if valid else np.zeros(0, dtype=int)
    return np.setdiff1d(np.arange(len(y)), held), held


@dataclass
class MLPProbe:
    """HEAR's MLP probe; every list option is a grid axis. Deterministic for a given seed and device."""

    hidden_layers: Sequence[int] = (1, 2)
    hidden_dim: Sequence[int] = (1024,)
    dropout: Sequence[float] = (0.1,)
    lr: Sequence[float] = (3.2e-3, 1e-3, 3.2e-4, 1e-4)
    init: Sequence[str] = INITS
    grid_points: int = 8
    batch_size: int = 1024
    max_epochs: int = 500
    patience: int = 20
    check_every: int = 3
    valid_fraction: float = 0.15
    select: str = "first-split"
    select_metric: str | None = None  # default: accuracy (single-label) / mAP (multi-label)
    standardize: bool = True
    device: str = "auto"
    seed: int = 0
    chosen: list[dict[str, Any]] = field(default_factory=list)  # per split: grid point, validation score, epoch

    uses_validation = True  # the runner passes the split's validation clips (fold plans: the next fold)

    def __post_init__(self) -> None:
        self.hidden_layers = _ints("hidden_layers", self.hidden_layers)
        self.hidden_dim = _ints("hidden_dim", self.hidden_dim)
        self.dropout, self.lr = _floats("dropout", self.dropout), _floats("lr", self.lr)
        self.init = tuple(self.init) if isinstance(self.init, (list, tuple)) else (self.init,)
        unknown = [i for i in self.init if i not in INITS]
        if unknown:
            raise ProtocolError(f"mlp-probe init {unknown[0]!r} is unknown.", hint=f"Use {' or '.join(INITS)}.")
        for name in ("grid_points", "batch_size", "max_epochs", "patience", "check_every"):
            if _ints(name, getattr(self, name))[0] < 1:
                raise ProtocolError(f"mlp-probe option {name} must be at least 1.")
        if not 0.0 < float(self.valid_fraction) < 1.0:
            raise ProtocolError(f"mlp-probe valid_fraction must be in (0, 1), got {self.valid_fraction!r}.")
        if self.select not in ("first-split", "every-split"):
            raise ProtocolError(f"mlp-probe select must be 'first-split' or 'every-split', got {self.select!r}.")
        self._best: dict[str, Any] | None = None

    def grid(self) -> list[dict[str, Any]]:
        """The grid points tried: ``grid_points`` of the full grid in a seeded random order."""
        axes = {"hidden_layers": self.hidden_layers, "hidden_dim": self.hidden_dim, "dropout": self.dropout,
                "lr": self.lr, "init": self.init}
        points = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
        order = np.random.default_rng(self.seed).permutation(len(points))
        return [points[i] for i in order[:self.grid_points]]

    def fit_predict(self, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                    num_classes: int | None = None, mask: np.ndarray | None = None,
                    x_valid: np.ndarray | None = None, y_valid: np.ndarray | None = None,
                    mask_valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Select on the validation set (given, or carved from the training split), train, and return
        (predicted labels, class scores) for ``x_test``: softmax probabilities, or sigmoid scores for
        multi-hot ``y_train``. Labels and columns follow :meth:`LinearProbe.fit_predict`."""
        from audiobench.protocols.mlp_train import Data, predict, torch_threads, train

        y_train, multilabel = np.asarray(y_train), np.asarray(y_train).ndim == 2
        if (x_valid is None) != (y_valid is None):
            raise ValueError("give both x_valid and y_valid, or neither")
        labels = y_train if y_valid is None else np.concatenate([y_train, np.asarray(y_valid)])
        classes = np.arange(y_train.shape[1]) if multilabel else (
            np.arange(num_classes) if num_classes is not None else np.unique(labels))
        out_of_range = labels.size and (labels.min() < 0 or labels.max() >= (num_classes or 0))
        if not multilabel and num_classes is not None and out_of_range:
            raise ValueError(f"num_classes={num_classes} needs class-index labels in [0, {num_classes})")
        validation = "given"
        if x_valid is None:
            keep, held = carve_validation(y_train, float(self.valid_fraction), self.seed)
            x_valid, y_valid = x_train[held], y_train[held]
            mask_valid = None if mask is None else np.asarray(mask)[held]
            x_train, y_train = x_train[keep], y_train[keep]
            mask = None if mask is None else np.asarray(mask)[keep]
            validation = f"carved: {len(held)} of {len(held) + len(keep)} training clips"
        encode = (lambda y: np.asarray(y)) if multilabel else (lambda y: np.searchsorted(classes, np.asarray(y)))
        mean, std = self._statistics(x_train)
        train_data = Data((x_train - mean) / std, encode(y_train), mask)
        valid_data = Data((x_valid - mean) / std, encode(y_valid), mask_valid)
        metric = self._metric(multilabel)
        device = self._device()
        points = self.grid() if self._best is None or self.select == "every-split" else [self._best]
        results = [train(point, self._settings(), train_data, valid_data, len(classes), multilabel, metric,
                         device, self.seed) for point in points]
        best = max(range(len(results)), key=lambda i: (results[i].score, -i))  # first of equal scores
        if self._best is None or self.select == "every-split":
            self._best = points[best]
        score = results[best].score
        self.chosen.append({**points[best], "validation_score": score if np.isfinite(score) else None,
                            "best_epoch": results[best].epoch, "validation": validation})
        with torch_threads(device, train_data.x.size):
            scores = predict(results[best].model, (np.asarray(x_test) - mean) / std, multilabel, device)
        predicted = scores.argmax(axis=1) if multilabel else classes[scores.argmax(axis=1)]
        return predicted, scores

    def _statistics(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.standardize:
            return np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
        mean, std = x.mean(axis=0), x.std(axis=0)
        std[std == 0] = 1.0
        return mean.astype(np.float32), std.astype(np.float32)

    def _settings(self) -> dict[str, int]:
        return {"batch_size": int(self.batch_size), "max_epochs": int(self.max_epochs),
                "patience": int(self.patience), "check_every": int(self.check_every)}

    def _metric(self, multilabel: bool):
        from audiobench.registry import METRICS

        return METRICS.get(self.select_metric or ("mAP" if multilabel else "accuracy"))

    def _device(self) -> str:
        from audiobench.device import resolve_device

        return resolve_device(self.device)

    def split_identity(self) -> dict[str, Any]:
        """What, with a split's arrays, determines its outputs (the split-cache key, see
        :mod:`audiobench.protocols.split_cache`): the settings, the device the MLP trains on and, when the grid
        was searched on an earlier split, the point it chose."""
        settings = {key: value for key, value in self.describe().items() if key != "chosen"}
        return {**settings, "device": self._device(),
                "selected": self._best if self.select == "first-split" else None}

    def split_state(self) -> dict[str, Any]:
        """What fitting the last split added: its entry of ``chosen`` and the grid point selected."""
        return {"chosen": copy.deepcopy(self.chosen[-1]), "selected": copy.deepcopy(self._best)}

    def restore_split(self, state: dict[str, Any]) -> None:
        """Take back a :meth:`split_state` stored with a split's cached outputs (ValueError if malformed;
        nothing is taken then)."""
        chosen, selected = state["chosen"], state["selected"]
        axes = {"hidden_layers", "hidden_dim", "dropout", "lr", "init"}
        if not (isinstance(chosen, dict) and isinstance(selected, dict) and set(selected) == axes
                and axes <= set(chosen) and "best_epoch" in chosen):
            raise ValueError(f"malformed mlp-probe state {state!r}")
        self.chosen.append(chosen)
        if self._best is None or self.select == "every-split":
            self._best = selected

    def describe(self) -> dict[str, object]:
        """Settings for the result record, with the grid point chosen on every split."""
        return {"name": "mlp-probe",
                "head": "standardise (training statistics) -> [Linear -> BatchNorm1d -> Dropout -> ReLU] x "
                        "hidden_layers -> Linear; softmax + CE (multiclass) / sigmoid + (masked) BCE (multilabel); "
                        "Adam",
                "grid": {"hidden_layers": list(self.hidden_layers), "hidden_dim": list(self.hidden_dim),
                         "dropout": list(self.dropout), "lr": list(self.lr), "init": list(self.init)},
                "grid_points": int(self.grid_points), "batch_size": int(self.batch_size),
                "max_epochs": int(self.max_epochs), "patience": int(self.patience),
                "check_every": int(self.check_every), "select": self.select,
                "select_metric": self.select_metric or "accuracy (multiclass) / mAP (multilabel)",
                "valid_fraction": float(self.valid_fraction), "standardize": bool(self.standardize),
                "seed": self.seed, **({"chosen": copy.deepcopy(self.chosen)} if self.chosen else {})}
