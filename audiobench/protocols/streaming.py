"""The linear probe of :mod:`audiobench.protocols.probe`, trained on features streamed in chunks.

Same objective as scikit-learn's ``StandardScaler + LogisticRegression(C)``: features standardised with
the training split's mean and (population) standard deviation, then ``mean CE + ||W||^2 / (2 C N)``
(multinomial softmax; one logistic output for two classes, as scikit-learn; no penalty on the intercept)
or, for multi-hot targets, the masked BCE objective of :mod:`audiobench.protocols.multilabel`. It is
minimised with full-batch L-BFGS (strong Wolfe line search) in float64, where every loss and gradient
evaluation sums over chunks of rows read from the training view. A chunk holds
``memory_budget_mb / (8 * (D + K) * SAFETY_FACTOR)`` rows, so peak memory follows the budget and not the
number of clips; a training split that fits in one chunk is read once and kept on the device.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Iterator, Union

import numpy as np
import torch

from audiobench.device import resolve_device
from audiobench.errors import ProtocolError
from audiobench.feature_matrix import RowView, row_view

SAFETY_FACTOR = 4  # float64 copies of a chunk, the raw chunk being prefetched, logits and their gradient
HISTORY_SIZE = 10  # L-BFGS memory, as scipy's (and so scikit-learn's) default
TOLERANCE_GRAD = 1e-7
TOLERANCE_CHANGE = 1e-12
# Chunks of fewer values than this are computed with one CPU thread: OpenMP barriers cost more than they
# save there (measured on 23 x 64 chunks on a busy 2-core machine: a 2-thread addmm waits ~4 ms for a core,
# the product itself takes microseconds). From PREFETCH_FROM_VALUES on, the next chunk is read in a
# background thread while the current one is computed.
SINGLE_THREAD_BELOW_VALUES = 1 << 18
PREFETCH_FROM_VALUES = 1 << 18


def _prefetched(chunks: Iterator[np.ndarray], background: bool) -> Iterator[np.ndarray]:
    """``chunks``, with the next one read in a background thread while the current one is used."""
    if not background:
        yield from chunks
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield chunk


def _on_device(chunk: np.ndarray, device: torch.device) -> torch.Tensor:
    """A float64 tensor of ``chunk`` on ``device`` (moved in its own dtype, widened there)."""
    if not chunk.flags.writeable:  # a read-only source array: torch wants memory it may write
        chunk = np.array(chunk)
    return torch.from_numpy(chunk).to(device).to(torch.float64)


@contextmanager
def _cpu_threads(count: int | None) -> Iterator[None]:
    """torch's CPU thread count set to ``count`` (None: unchanged) inside the block."""
    previous = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Softmax:
    """Multinomial logistic regression over the classes present in training (class positions ``targets``)."""

    def __init__(self, targets: np.ndarray) -> None:
        self.targets, self.outputs, self.normaliser = targets, int(targets.max()) + 1, float(len(targets))
        self.columns = self.outputs  # score columns

    def batch(self, start: int, stop: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        return (torch.from_numpy(np.ascontiguousarray(self.targets[start:stop], dtype=np.int64)).to(device),)

    @staticmethod
    def loss_and_gradient(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed cross entropy and its gradient with respect to ``logits``."""
        picked = torch.arange(len(targets), device=logits.device)
        loss = (torch.logsumexp(logits, dim=1) - logits[picked, targets]).sum()
        gradient = torch.softmax(logits, dim=1)
        gradient[picked, targets] -= 1.0
        return loss, gradient

    @staticmethod
    def scores(logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)


class _Sigmoid:
    """Independent logistic outputs on multi-hot ``targets`` with known-label weights ``known`` (masked BCE).

    ``two_columns``: the binary single-label case, scored as ``[1 - p, p]`` like scikit-learn.
    """

    def __init__(self, targets: np.ndarray, known: np.ndarray | None, two_columns: bool = False) -> None:
        self.targets, self.known, self.two_columns = targets, known, two_columns
        self.outputs = targets.shape[1]
        self.columns = self.outputs + int(two_columns)
        total = targets.size if known is None else float(np.count_nonzero(known))
        self.normaliser = max(float(total), 1.0)

    def batch(self, start: int, stop: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        def tensor(array: np.ndarray) -> torch.Tensor:
            return _on_device(np.ascontiguousarray(array[start:stop]), device)

        return (tensor(self.targets),) if self.known is None else (tensor(self.targets), tensor(self.known))

    @staticmethod
    def loss_and_gradient(logits: torch.Tensor, targets: torch.Tensor,
                          known: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed (masked) binary cross entropy and its gradient with respect to ``logits``."""
        losses = logits.clamp(min=0) - targets * logits + torch.log1p(torch.exp(-logits.abs()))
        gradient = torch.sigmoid(logits) - targets
        if known is not None:
            losses, gradient = losses * known, gradient * known
        return losses.sum(), gradient

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        positive = torch.sigmoid(logits)
        return torch.cat([1.0 - positive, positive], dim=1) if self.two_columns else positive


Head = Union[_Softmax, _Sigmoid]


@dataclass
class StreamingLinearProbe:
    """Standardise + logistic regression on chunks of a :class:`~audiobench.feature_matrix.RowView`.

    Deterministic for a seed and device (zero initialisation; the seed is recorded, the objective is convex).
    """

    C: float = 1.0
    max_iter: int = 1000
    seed: int = 0
    memory_budget_mb: float = 512
    device: str = "auto"
    fits: list[dict[str, Any]] = field(default_factory=list)  # chunk rows, device and iterations per split
    streaming: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if isinstance(self.C, bool) or not isinstance(self.C, (int, float)) or self.C <= 0:
            raise ProtocolError(f"linear-probe-streaming needs a positive number for C, got {self.C!r}.",
                                hint="Give --probe-c a number such as 1.0 (C='auto' is linear-probe only).")
        if not self.memory_budget_mb > 0:
            raise ProtocolError(f"linear-probe-streaming needs memory_budget_mb > 0, got {self.memory_budget_mb!r}.",
                                hint="Set the protocol option memory_budget_mb to e.g. 512.")

    def chunk_rows(self, dim: int, outputs: int) -> int:
        """Rows per chunk for ``dim`` features and ``outputs`` logits under the memory budget."""
        return max(1, int(self.memory_budget_mb * 2**20 // (8 * (dim + outputs) * SAFETY_FACTOR)))

    def fit_predict(self, x_train: RowView | np.ndarray, y_train: np.ndarray, x_test: RowView | np.ndarray,
                    num_classes: int | None = None, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(predicted labels, scores ``[N_test, K]``) as :meth:`LinearProbe.fit_predict`; scores are float32."""
        train, test, y = row_view(x_train), row_view(x_test), np.asarray(y_train)
        if len(train) != len(y):
            raise ProtocolError(f"{len(train)} training rows but {len(y)} training labels.",
                                hint="Pass the labels of exactly the training rows.")
        if y.ndim == 2:
            scores = self._fit_scores(train, _Sigmoid(y, mask), test)
            return scores.argmax(axis=1), scores
        classes = np.unique(y)
        if len(classes) < 2:
            raise ProtocolError(f"The training split has a single class ({classes.tolist()}); "
                                "a classifier needs at least two.", hint="Use splits with several classes.")
        position = np.searchsorted(classes, y)
        head = (_Sigmoid((position == 1)[:, None], None, two_columns=True) if len(classes) == 2
                else _Softmax(position))
        scores = self._fit_scores(train, head, test)
        predicted = classes[scores.argmax(axis=1)]
        if num_classes is None:
            return predicted, scores
        if not np.issubdtype(classes.dtype, np.integer) or classes.min() < 0 or classes.max() >= num_classes:
            raise ProtocolError(f"num_classes={num_classes} needs class-index labels in [0, {num_classes}), "
                                f"got classes {classes.tolist()}.", hint="Pass labels as class indices.")
        full = np.zeros((len(scores), num_classes), dtype=scores.dtype)
        full[:, classes] = scores
        return predicted, full

    def _fit_scores(self, train: RowView, head: Head, test: RowView) -> np.ndarray:
        device = torch.device(resolve_device(self.device))
        rows = self.chunk_rows(train.shape[1], head.outputs)
        values = min(rows, len(train)) * train.shape[1]
        with _cpu_threads(1 if values < SINGLE_THREAD_BELOW_VALUES and device.type == "cpu" else None):
            chunks = _Chunks(train, head, rows, device, background=values >= PREFETCH_FROM_VALUES)
            weight, bias, iterations = self._minimise(chunks, head, len(train))
            scores = chunks.scores(test, weight, bias)
        self.fits.append({"chunk_rows": rows, "chunks": -(-len(train) // rows), "device": str(device),
                          "lbfgs_iterations": iterations})
        return scores

    def _minimise(self, chunks: "_Chunks", head: Head, num_rows: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(weight, bias, L-BFGS iterations) minimising the mean loss + ||W||^2 / (2 C N) over ``chunks``."""
        weight = torch.zeros(chunks.dim, head.outputs, dtype=torch.float64, device=chunks.device)
        bias = torch.zeros(head.outputs, dtype=torch.float64, device=chunks.device)
        optimiser = torch.optim.LBFGS([weight, bias], max_iter=self.max_iter, history_size=HISTORY_SIZE,
                                      tolerance_grad=TOLERANCE_GRAD, tolerance_change=TOLERANCE_CHANGE,
                                      line_search_fn="strong_wolfe")
        penalty = 1.0 / (float(self.C) * max(num_rows, 1))

        def closure() -> torch.Tensor:
            # standardisation folded into the parameters: ((x - m) / s) W + b = x (W / s) + (b - (m / s) W)
            scaled, shift = chunks.raw_parameters(weight, bias)
            loss = torch.zeros((), dtype=torch.float64, device=chunks.device)
            transposed_gradient = torch.zeros(head.outputs, chunks.dim, dtype=torch.float64, device=chunks.device)
            bias_gradient = torch.zeros_like(bias)
            for x, *targets in chunks.training_batches():
                chunk_loss, logit_gradient = head.loss_and_gradient(torch.addmm(shift, x, scaled), *targets)
                loss += chunk_loss
                transposed_gradient.addmm_(logit_gradient.T, x)  # G^T X: ~10x faster on CPU than X^T G
                bias_gradient += logit_gradient.sum(dim=0)
            raw_gradient = transposed_gradient.T - torch.outer(chunks.mean, bias_gradient)
            weight.grad = (raw_gradient / chunks.std[:, None] / head.normaliser + penalty * weight).contiguous()
            bias.grad = bias_gradient / head.normaliser
            return loss / head.normaliser + 0.5 * penalty * weight.square().sum()

        optimiser.step(closure)
        return weight, bias, int(optimiser.state[weight].get("n_iter", 0))

    def describe(self) -> dict[str, object]:
        """Settings for the result record."""
        return {"name": "linear-probe-streaming",
                "head": "StandardScaler + LogisticRegression objective (multinomial; one logistic output for two "
                        "classes; multi-label: masked BCE), mean loss + ||W||^2 / (2 C N), float64 full-batch "
                        "L-BFGS (strong Wolfe) over streamed chunks",
                "C": self.C, "max_iter": self.max_iter, "seed": self.seed, "memory_budget_mb": self.memory_budget_mb,
                "device": self.device, **({"fits": self.fits} if self.fits else {})}


class _Chunks:
    """Chunks of views on a device, with the training split's mean and std (one streamed pass).

    A training split that fits in one chunk is read once and kept for every later pass.
    """

    def __init__(self, train: RowView, head: Head, rows: int, device: torch.device, background: bool) -> None:
        self.train, self.head, self.rows, self.device, self.background = train, head, rows, device, background
        self.dim = train.shape[1]
        self.mean, self.std = _standardisation(_prefetched(train.chunks(rows), background), device)
        self._kept: list[tuple[torch.Tensor, ...]] = []

    def features(self, view: RowView) -> Iterator[torch.Tensor]:
        """float64 tensors of consecutive chunks of ``view`` (not standardised: see :meth:`raw_parameters`)."""
        for chunk in _prefetched(view.chunks(self.rows), self.background):
            yield _on_device(chunk, self.device)

    def raw_parameters(self, weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W', b')`` with ``x W' + b' = standardised(x) W + b``: no per-chunk standardisation pass."""
        scaled = weight / self.std[:, None]
        return scaled, bias - self.mean @ scaled

    def training_batches(self) -> Iterator[tuple[torch.Tensor, ...]]:
        """``(x, *targets)`` tensors for consecutive chunks of the training split."""
        if self._kept:
            yield from self._kept
            return
        start = 0
        for x in self.features(self.train):
            batch = (x, *self.head.batch(start, start + len(x), self.device))
            if len(self.train) <= self.rows:
                self._kept.append(batch)
            start += len(x)
            yield batch

    def scores(self, view: RowView, weight: torch.Tensor, bias: torch.Tensor) -> np.ndarray:
        """float32 scores ``[len(view), K]`` of the linear model, chunk by chunk."""
        self._kept.clear()
        scaled, shift = self.raw_parameters(weight, bias)
        scores = np.zeros((len(view), self.head.columns), dtype=np.float32)
        done = 0
        with torch.no_grad():
            for x in self.features(view):
                scores[done:done + len(x)] = self.head.scores(torch.addmm(shift, x, scaled)).cpu().numpy()
                done += len(x)
        return scores


def _standardisation(chunks: Iterable[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population std of the columns of ``chunks`` (float64, Chan's pairwise merge); 0 std -> 1."""
    count, mean, spread = 0, None, None
    for chunk in chunks:
        x = _on_device(chunk, device)
        chunk_mean = x.mean(dim=0)
        chunk_spread = (x - chunk_mean).square().sum(dim=0)
        if mean is None:
            count, mean, spread = len(x), chunk_mean, chunk_spread
            continue
        total = count + len(x)
        delta = chunk_mean - mean
        mean = mean + delta * (len(x) / total)
        spread = spread + chunk_spread + delta.square() * (count * len(x) / total)
        count = total
    if mean is None:
        raise ProtocolError("The training split has no rows.", hint="Check the split plan of the task.")
    std = (spread / count).sqrt()
    std[std == 0] = 1.0
    return mean, std
