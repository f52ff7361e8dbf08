"""Linear probe on frozen clip embeddings: standardise, then multinomial logistic regression.

Hyper-parameters are fixed by the task card, or (``C="auto"``) chosen by an inner stratified
cross-validation on the training split only; the test split is never looked at before predicting.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from audiobench.protocols.multilabel import fit_predict_multilabel

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

AUTO_C_GRID = (0.01, 0.1, 1.0, 10.0)
# Below this many feature values, multi-threaded BLAS only adds overhead (measured: 20 lbfgs iterations
# on 331 x 384 ESC-50 embeddings take 1.4 s with 2 OpenBLAS threads and 0.02 s with one).
SINGLE_THREAD_BELOW = 5_000_000
# The probe is solved to its optimum, in float64, so that its score is a property of the features and not of
# where a solver stopped or of the CPU's float32 rounding. scikit-learn's default (L-BFGS, gradient tolerance
# 1e-4, float32 kept as given) stops early: after 7 iterations on 20k x 512 blobs of 50 classes, ~19 on mn04
# ESC-50 embeddings; on logmel-stats features a last-bit change of the inputs moved test probabilities by 2e-2
# and flipped a test clip, so two CPUs recorded two accuracies. L-BFGS at 1e-6 stops on its function-change
# test instead, still 1e-2 away. Newton-CG (Hessian-vector products) to a gradient tolerance of 1e-8 in float64
# moves them by < 6e-6 (measured on the ESC-50 CV folds of both models, 3 perturbed copies each; the smallest
# top-1/top-2 margin there is 1.2e-4), at 2-5x the time of the early-stopped L-BFGS (0.2 s per mn04 fold).
SOLVER = "newton-cg"
GRADIENT_TOLERANCE = 1e-8
# Near 1e-8 a Newton step can no longer lower the loss in float64: scikit-learn then warns "Line Search failed"
# (scipy: "Rounding errors prevent the line search from converging") and keeps the last iterate, which is the
# optimum to rounding. Those notes of those two modules are silenced, once for the process (a
# ``catch_warnings`` block is not thread-safe, and splits are fitted in threads); reaching max_iter still warns.
for _message in ("Line Search failed", "Rounding errors prevent", "The line search algorithm did not"):
    warnings.filterwarnings("ignore", message=_message, module=r"(sklearn\.utils|scipy)\.optimize")


@dataclass
class LinearProbe:
    """Standard scaler + logistic regression, deterministic for a given seed."""

    C: float | str = 1.0
    max_iter: int = 1000
    seed: int = 0
    tol: float = GRADIENT_TOLERANCE
    inner_folds: int = 3
    chosen: list[float] = field(default_factory=list)  # C chosen per split when C="auto"
    iterations: list[int] = field(default_factory=list)  # Newton iterations per split (max_iter: not converged)

    def _pipeline(self, c: float) -> "Pipeline":
        from sklearn.linear_model import LogisticRegression  # imported when a split is fitted, not when cached
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        head = LogisticRegression(C=c, solver=SOLVER, max_iter=self.max_iter, tol=self.tol, random_state=self.seed)
        return make_pipeline(StandardScaler(), head)

    def fit_predict(self, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                    num_classes: int | None = None, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Train on the training split and return (predicted labels, class probabilities) for the test split.

        Without ``num_classes`` the probability columns are the classes present in ``y_train`` (sorted).
        With it, labels must be class indices ``0 .. num_classes - 1`` and the probabilities have one
        column per class of the dataset (zero for a class absent from the training split). Multi-hot
        ``y_train`` ``[N, C]`` trains a multi-label probe (:mod:`audiobench.protocols.multilabel`; ``mask``:
        known labels) and returns sigmoid scores.
        """
        if np.asarray(y_train).ndim == 2:
            if self.C == "auto":
                raise ValueError("C='auto' is implemented for single-label tasks only; give a number")
            scores = fit_predict_multilabel(x_train, y_train, x_test, float(self.C), self.max_iter, self.seed, mask)
            return scores.argmax(axis=1), scores
        from threadpoolctl import threadpool_limits

        threads = 1 if x_train.size < SINGLE_THREAD_BELOW else None
        with threadpool_limits(limits=threads, user_api="blas"):  # float64: scikit-learn keeps float32 as given
            predicted, probabilities, classes = self._fit_predict(np.asarray(x_train, dtype=np.float64), y_train,
                                                                  np.asarray(x_test, dtype=np.float64))
        if num_classes is None:
            return predicted, probabilities
        if not np.issubdtype(classes.dtype, np.integer) or classes.min() < 0 or classes.max() >= num_classes:
            raise ValueError(f"num_classes={num_classes} needs class-index labels in [0, {num_classes}), "
                             f"got classes {classes.tolist()}")
        full = np.zeros((probabilities.shape[0], num_classes), dtype=probabilities.dtype)
        full[:, classes] = probabilities
        return predicted, full

    def parallel_splits(self, train_values: int, multilabel: bool) -> bool:
        """Whether several splits may be fitted at once, one thread each (each on its own :meth:`for_split`
        copy): single-label fits small enough for one BLAS thread."""
        return not multilabel and train_values < SINGLE_THREAD_BELOW

    def for_split(self) -> "LinearProbe":
        """A copy that fits one split on its own (its ``C="auto"`` choice kept apart until :meth:`merge_splits`)."""
        return dataclasses.replace(self, chosen=[], iterations=[])

    def merge_splits(self, copies: list["LinearProbe"]) -> None:
        """Take the choices and iteration counts of the :meth:`for_split` copies, given in split order."""
        for copy in copies:
            self.chosen.extend(copy.chosen)
            self.iterations.extend(copy.iterations)

    def split_identity(self) -> dict[str, Any]:
        """The settings that, with a split's arrays, determine its outputs (the split-cache key, see
        :mod:`audiobench.protocols.split_cache`); the solver and its constants are in the protocol's code."""
        return {"name": "linear-probe", "C": self.C, "max_iter": self.max_iter, "seed": self.seed,
                "tol": self.tol, "inner_folds": self.inner_folds}

    def split_state(self) -> dict[str, Any]:
        """What fitting splits added to this (:meth:`for_split`) copy: the chosen C and solver iterations."""
        return {"chosen": list(self.chosen), "iterations": list(self.iterations)}

    def restore_split(self, state: dict[str, Any]) -> None:
        """Take back a :meth:`split_state` stored with a split's cached outputs (ValueError if malformed)."""
        chosen, iterations = state["chosen"], state["iterations"]
        if not (isinstance(chosen, list) and all(isinstance(c, (int, float)) for c in chosen)
                and isinstance(iterations, list) and all(isinstance(i, int) for i in iterations)):
            raise ValueError(f"malformed linear-probe state {state!r}")
        if len(chosen) != (1 if self.C == "auto" else 0) or len(iterations) > 1:
            raise ValueError(f"a state of one split has at most one iteration count and, with C='auto', one "
                             f"chosen C; got {state!r}")
        self.chosen.extend(float(c) for c in chosen)
        self.iterations.extend(iterations)

    def _fit_predict(self, x_train: np.ndarray, y_train: np.ndarray,
                     x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.C == "auto":
            from sklearn.model_selection import GridSearchCV, StratifiedKFold

            search = GridSearchCV(
                self._pipeline(1.0), {"logisticregression__C": list(AUTO_C_GRID)},
                cv=StratifiedKFold(self.inner_folds, shuffle=True, random_state=self.seed), scoring="accuracy",
            )
            model = search.fit(x_train, y_train).best_estimator_
            self.chosen.append(float(search.best_params_["logisticregression__C"]))
        else:
            model = self._pipeline(float(self.C)).fit(x_train, y_train)
        self.iterations.append(int(np.max(model[-1].n_iter_)))
        probabilities = model.predict_proba(x_test)
        return model.classes_[probabilities.argmax(axis=1)], probabilities, model.classes_

    def describe(self) -> dict[str, object]:
        """Settings for the result record."""
        head = (f"StandardScaler + LogisticRegression ({SOLVER}, float64, multinomial); "
                "multi-label: one logistic output per class, (masked) BCE, L-BFGS, float64")
        return {"name": "linear-probe", "head": head,
                "C": self.C, "max_iter": self.max_iter, "tol": self.tol, "seed": self.seed,
                "C_selection": f"inner stratified {self.inner_folds}-fold CV on the training split over "
                               f"{list(AUTO_C_GRID)}" if self.C == "auto" else "fixed by the task card / CLI",
                **({"chosen_C": self.chosen} if self.chosen else {}),
                **({"solver_iterations": self.iterations,
                    "converged": all(count < self.max_iter for count in self.iterations)} if self.iterations else {})}
