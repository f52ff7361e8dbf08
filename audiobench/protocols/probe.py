"""Linear probe on frozen clip embeddings: standardise, then multinomial logistic regression.

Hyper-parameters are fixed by the task card, or (``C="auto"``) chosen by an inner stratified
cross-validation on the training split only; the test split is never looked at before predicting.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from audiobench.protocols.multilabel import fit_predict_multilabel

AUTO_C_GRID = (0.01, 0.1, 1.0, 10.0)
# Below this many feature values, multi-threaded BLAS only adds overhead (measured: 20 lbfgs iterations
# on 331 x 384 ESC-50 embeddings take 1.4 s with 2 OpenBLAS threads and 0.02 s with one).
SINGLE_THREAD_BELOW = 5_000_000
# L-BFGS stops when the largest gradient component is below this (scikit-learn's default is 1e-4). At 1e-4
# a probe stops far from its optimum (mn04 on ESC-50: after ~19 iterations) and its predictions depend on
# float rounding: logmel-stats features changed in their last bit flip one test clip in a fold, so two CPUs
# gave two accuracies. At 1e-6 the solver runs until the objective stops changing (scipy's ftol) and the
# predictions are the optimum's, the same under last-bit perturbations of the features (measured on the
# ESC-50 CV folds: 6 perturbed copies, every fold, both models).
GRADIENT_TOLERANCE = 1e-6


@dataclass
class LinearProbe:
    """Standard scaler + logistic regression, deterministic for a given seed."""

    C: float | str = 1.0
    max_iter: int = 1000
    seed: int = 0
    tol: float = GRADIENT_TOLERANCE
    inner_folds: int = 3
    chosen: list[float] = field(default_factory=list)  # C chosen per split when C="auto"

    def _pipeline(self, c: float) -> Pipeline:
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=self.max_iter, tol=self.tol,
                                                                random_state=self.seed))

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
        threads = 1 if x_train.size < SINGLE_THREAD_BELOW else None
        with threadpool_limits(limits=threads, user_api="blas"):
            predicted, probabilities, classes = self._fit_predict(x_train, y_train, x_test)
        if num_classes is None:
            return predicted, probabilities
        if not np.issubdtype(classes.dtype, np.integer) or classes.min() < 0 or classes.max() >= num_classes:
            raise ValueError(f"num_classes={num_classes} needs class-index labels in [0, {num_classes}), "
                             f"got classes {classes.tolist()}")
        full = np.zeros((probabilities.shape[0], num_classes), dtype=probabilities.dtype)
        full[:, classes] = probabilities
        return predicted, full

    def _fit_predict(self, x_train: np.ndarray, y_train: np.ndarray,
                     x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.C == "auto":
            search = GridSearchCV(
                self._pipeline(1.0), {"logisticregression__C": list(AUTO_C_GRID)},
                cv=StratifiedKFold(self.inner_folds, shuffle=True, random_state=self.seed), scoring="accuracy",
            )
            model = search.fit(x_train, y_train).best_estimator_
            self.chosen.append(float(search.best_params_["logisticregression__C"]))
        else:
            model = self._pipeline(float(self.C)).fit(x_train, y_train)
        probabilities = model.predict_proba(x_test)
        return model.classes_[probabilities.argmax(axis=1)], probabilities, model.classes_

    def describe(self) -> dict[str, object]:
        """Settings for the result record."""
        return {"name": "linear-probe", "head": "StandardScaler + LogisticRegression (lbfgs, multinomial); "
                                                "multi-label: one logistic output per class, (masked) BCE, L-BFGS",
                "C": self.C, "max_iter": self.max_iter, "tol": self.tol, "seed": self.seed,
                "C_selection": f"inner stratified {self.inner_folds}-fold CV on the training split over "
                               f"{list(AUTO_C_GRID)}" if self.C == "auto" else "fixed by the task card / CLI",
                **({"chosen_C": self.chosen} if self.chosen else {})}
