"""Train/test splits: the official folds of a task, or a (non-official) stratified K-fold CV."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiobench.datasets.base import DatasetIndex
from audiobench.errors import DatasetError, ProtocolError


@dataclass(frozen=True)
class Split:
    """One train/test split (indices into the dataset's clip list); ``valid`` for model selection, if any."""

    name: str
    train: np.ndarray
    test: np.ndarray
    valid: np.ndarray | None = None


@dataclass(frozen=True)
class SplitPlan:
    """The splits of a run and whether they are the task's official protocol."""

    official: bool
    description: str
    splits: list[Split]


def describe_missing(index: DatasetIndex, data_dir: str | None = None, show: int = 5) -> str:
    """Sentence saying how many clips are present, which folds are complete and what is missing."""
    present = index.present_per_fold()
    per_fold = ", ".join(f"fold {f}: {present.get(f, 0)}/{n}" for f, n in index.expected_per_fold.items())
    complete = ", ".join(str(f) for f in index.complete_folds()) or "none"
    more = len(index.missing) - show
    examples = ", ".join(index.missing[:show]) + (f" (+{more} more)" if more > 0 else "")
    where = f" under {data_dir}" if data_dir else ""
    listed = sum(index.expected_per_fold.values())
    return (f"{index.name} is incomplete{where}: {len(index.clips)} of {listed} clips present; "
            f"complete folds: {complete} ({per_fold}); missing e.g. {examples}")


def official_folds(index: DatasetIndex, folds: list[int], data_dir: str | None = None) -> SplitPlan:
    """Leave-one-fold-out over the official folds; every listed clip of every fold must be present.

    The plan is official only under the official-data rule (:meth:`DatasetIndex.coverage`): a metadata
    file that is not the official list (e.g. 400 of the 2000 rows) gives a NON-OFFICIAL plan that says so.
    """
    if not folds:
        raise ProtocolError(f"{index.name}: the task card lists no folds (the data has no official split).",
                            hint="Pass --cv K for a (non-official) stratified K-fold cross-validation.")
    if index.missing or set(index.complete_folds()) != set(folds):
        raise DatasetError(
            describe_missing(index, data_dir) + ".",
            hint="Add the missing clips for the official protocol, or pass --cv K for a stratified K-fold "
                 "cross-validation over the clips present (reported as non-official).",
        )
    fold_of = np.array([c.fold for c in index.clips])
    splits = [Split(name=f"fold{f}", train=np.flatnonzero(fold_of != f), test=np.flatnonzero(fold_of == f))
              for f in folds]
    coverage = index.coverage()
    description = f"official {len(folds)}-fold leave-one-fold-out"
    if not coverage.official:
        description = f"NON-OFFICIAL: the {len(folds)} folds of the metadata over {coverage.summary()}"
    return SplitPlan(official=coverage.official, description=description, splits=splits)


def fixed_splits(index: DatasetIndex, train: list[str], test: list[str], valid: list[str] | None = None,
                 name: str = "test") -> SplitPlan:
    """The official fixed lists: train on ``train`` (split names), select on ``valid``, test on ``test``.

    Official only under the official-data rule; a partial dataset (AudioSet is never complete) runs and
    is labelled NON-OFFICIAL with its coverage.
    """
    split_of = np.array([clip.split or "" for clip in index.clips])
    parts = {role: np.flatnonzero(np.isin(split_of, names)) for role, names in
             (("train", train), ("test", test), ("valid", valid or []))}
    empty = [role for role in ("train", "test") if len(parts[role]) == 0]
    if empty:
        present = sorted(set(split_of.tolist()))
        raise DatasetError(f"{index.name}: no clip present in the {' and '.join(empty)} split(s) "
                           f"({', '.join(train + test)}); splits present: {present or 'none'}.",
                           hint="Check --data-dir and the dataset's split lists.")
    coverage = index.coverage()
    roles = f"train {'+'.join(train)}" + (f", select on {'+'.join(valid)}" if valid else "") + f", test {'+'.join(test)}"
    description = f"official fixed splits ({roles})" if coverage.official else (
        f"NON-OFFICIAL: fixed splits ({roles}) over {coverage.summary()}")
    split = Split(name=name, train=parts["train"], test=parts["test"], valid=parts["valid"] if valid else None)
    return SplitPlan(official=coverage.official, description=description, splits=[split])


def cross_validation(index: DatasetIndex, k: int, seed: int) -> SplitPlan:
    """Stratified K-fold cross-validation over the clips present (shuffled with ``seed``; plain K-fold for
    multi-label datasets)."""
    if k < 2:
        raise ProtocolError(f"--cv needs at least 2 folds, got {k}.")
    from sklearn.model_selection import KFold, StratifiedKFold  # only cross-validation needs scikit-learn here

    if index.multilabel:
        folds = KFold(n_splits=k, shuffle=True, random_state=seed)
        pieces = folds.split(np.zeros(len(index.clips)))
        kind = f"{k}-fold"
    else:
        labels = index.targets()
        smallest = np.bincount(labels)[np.unique(labels)].min() if len(labels) else 0
        if smallest < k:
            raise ProtocolError(f"Stratified {k}-fold CV needs at least {k} clips per class; the smallest present "
                                f"class has {smallest}.", hint="Use a smaller --cv K or add clips.")
        pieces = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(labels)), labels)
        kind = f"stratified {k}-fold"
    splits = [Split(name=f"cv{i + 1}", train=train, test=test) for i, (train, test) in enumerate(pieces)]
    description = (f"NON-OFFICIAL: {kind} cross-validation (seed {seed}) over the "
                   f"{len(index.clips)} clips present of {index.expected_total}")
    if index.missing:
        description += f" ({len(index.missing)} listed clips missing, see dataset.missing)"
    return SplitPlan(official=False, description=description, splits=splits)
