"""Training one grid point of the HEAR MLP probe (:mod:`audiobench.protocols.mlp`): build, fit with early
stopping on the validation score, keep the weights of the best check."""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from audiobench.errors import ProtocolError

PREDICT_BATCH = 65536
# On CPU, below this many training feature values one thread is faster: on a busy 2-core machine a grid
# point on 120 x 16 toy features took 0.5 s with one torch thread and 8-14 s with two.
SINGLE_THREAD_BELOW = 5_000_000


@dataclass(frozen=True)
class Data:
    """Standardised features ``[N, D]``, targets (class indices ``[N]`` or multi-hot ``[N, C]``), known-label mask."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray | None = None


@dataclass
class Result:
    """A trained grid point: the model at its best validation check, that score and its epoch."""

    model: nn.Module
    score: float
    epoch: int


def build(point: dict[str, Any], n_features: int, n_outputs: int) -> nn.Module:
    """``[Linear -> BatchNorm1d -> Dropout -> ReLU] x hidden_layers -> Linear`` with Xavier weights
    (gain 1 on the input layer, ``calculate_gain('relu')`` after a ReLU, as hear-eval-kit)."""
    initialise = {"xavier_uniform": nn.init.xavier_uniform_, "xavier_normal": nn.init.xavier_normal_}[point["init"]]
    layers: list[nn.Module] = []
    width, activation = n_features, "linear"
    for _ in range(point["hidden_layers"]):
        linear = nn.Linear(width, point["hidden_dim"])
        initialise(linear.weight, gain=nn.init.calculate_gain(activation))
        layers += [linear, nn.BatchNorm1d(point["hidden_dim"]), nn.Dropout(point["dropout"]), nn.ReLU()]
        width, activation = point["hidden_dim"], "relu"
    head = nn.Linear(width, n_outputs)
    initialise(head.weight, gain=nn.init.calculate_gain(activation))
    return nn.Sequential(*layers, head)


def _loss(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None, multilabel: bool) -> torch.Tensor:
    if not multilabel:
        return nn.functional.cross_entropy(logits, y)
    losses = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    if mask is None:
        return losses.mean()
    return (losses * mask).sum() / mask.sum().clamp(min=1.0)


def predict(model: nn.Module, x: np.ndarray, multilabel: bool, device: str) -> np.ndarray:
    """Class scores ``[N, C]`` (float64): softmax probabilities, or sigmoid scores for multi-label tasks."""
    model.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(x), PREDICT_BATCH):
            batch = torch.as_tensor(np.asarray(x[start:start + PREDICT_BATCH], dtype=np.float32), device=device)
            logits = model(batch)
            parts.append((torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)).double().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, model[-1].out_features))


def _score(model: nn.Module, data: Data, multilabel: bool, metric: Callable[..., float], device: str) -> float:
    scores = predict(model, data.x, multilabel, device)
    extra = {} if data.mask is None else {"mask": data.mask}
    value = float(metric(data.y, scores.argmax(axis=1), scores, **extra))
    return value if np.isfinite(value) else float("-inf")  # an undefined score never wins


@contextlib.contextmanager
def torch_threads(device: str, size: int) -> Iterator[None]:
    """One torch thread for small CPU problems (restored afterwards)."""
    before = torch.get_num_threads()
    if device == "cpu" and size < SINGLE_THREAD_BELOW:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(point: dict[str, Any], settings: dict[str, int], train_data: Data, valid_data: Data, n_outputs: int,
          multilabel: bool, metric: Callable[..., float], device: str, seed: int) -> Result:
    """Fit one grid point: Adam on shuffled mini-batches, the validation score every ``check_every`` epochs,
    stop after ``patience`` checks without a strictly better score; return the best check's model."""
    if len(train_data.x) < 2 or len(valid_data.x) < 1:
        raise ProtocolError(f"The MLP probe needs at least 2 training clips and 1 validation clip, got "
                            f"{len(train_data.x)} and {len(valid_data.x)}.")
    cuda = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=cuda), torch_threads(device, train_data.x.size):  # seeded; caller's RNG kept
        torch.manual_seed(seed)
        model = build(point, train_data.x.shape[1], n_outputs).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=point["lr"])
        x = torch.as_tensor(np.asarray(train_data.x, dtype=np.float32), device=device)
        y = torch.as_tensor(train_data.y, dtype=torch.float32 if multilabel else torch.long, device=device)
        mask = None if train_data.mask is None else torch.as_tensor(train_data.mask, dtype=torch.float32, device=device)
        shuffle = torch.Generator().manual_seed(seed)
        best: tuple[float, dict[str, torch.Tensor], int] | None = None
        waited, batch = 0, settings["batch_size"]
        for epoch in range(1, settings["max_epochs"] + 1):
            model.train()
            order = torch.randperm(len(x), generator=shuffle).to(device)
            for start in range(0, len(x), batch):
                rows = order[start:start + batch]
                if len(rows) < 2:  # BatchNorm cannot train on one clip; it is seen in other epochs' batches
                    continue
                loss = _loss(model(x[rows]), y[rows], None if mask is None else mask[rows], multilabel)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            if epoch % settings["check_every"] and not (epoch == settings["max_epochs"] and best is None):
                continue  # validation every check_every epochs (and once at the end if it never ran)
            score = _score(model, valid_data, multilabel, metric, device)
            if best is None or score > best[0]:
                best, waited = (score, copy.deepcopy(model.state_dict()), epoch), 0
            else:
                waited += 1
                if waited >= settings["patience"]:
                    break
        model.load_state_dict(best[1])
    return Result(model=model.eval(), score=best[0], epoch=best[2])
