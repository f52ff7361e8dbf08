"""``audiobench classes RECORD``: per-class table and confusion matrix of a record, from its predictions file.

The numbers pool every test clip of every split (each clip is tested in exactly one split).

Single-label tasks: one row per class with ``class``, ``support`` (clips of the class), ``recall`` (the
class's accuracy), ``precision`` and ``f1`` (scikit-learn, 0 where undefined), and a confusion matrix
normalised per true class (each row sums to 1; rows of classes without clips are 0), drawn as a heatmap.
Multi-label tasks: ``class``, ``support`` (positive clips) and ``ap`` (average precision; empty where a class
has no positive; clips whose label is masked as unknown are left out of that class).

Files (default: beside the record; ``--out DIR`` puts them in ``DIR``): ``<record stem>.classes.csv`` always,
``<record stem>.confusion.png`` and ``.svg`` for single-label tasks.

JSON keys of :func:`class_report` (and ``audiobench classes --json``): ``record``, ``task``, ``model``,
``multilabel``, ``clips``, ``splits`` (names), ``columns`` (the table's columns), ``rows`` (one object per
class, keyed by column), ``files`` (``csv``, and ``png`` / ``svg`` for single-label tasks).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_fscore_support

from audiobench.predictions import Predictions
from audiobench.report.records import load_record


def single_label_table(predictions: Predictions) -> pd.DataFrame:
    """Per-class support, recall (class accuracy), precision and F1 of a single-label record."""
    labels = np.arange(len(predictions.classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        predictions.target, predictions.predicted(), labels=labels, zero_division=0)
    return pd.DataFrame({"class": predictions.classes, "support": support.astype(int), "recall": recall,
                         "precision": precision, "f1": f1})


def multi_label_table(predictions: Predictions) -> pd.DataFrame:
    """Per-class support (positives) and average precision of a multi-label record."""
    known = np.ones(predictions.target.shape, dtype=bool) if predictions.mask is None else np.asarray(predictions.mask)
    support, ap = [], []
    for k in range(len(predictions.classes)):
        rows = known[:, k]
        truth = predictions.target[rows, k]
        support.append(int(truth.sum()))
        ap.append(float(average_precision_score(truth, predictions.scores[rows, k])) if truth.any() else math.nan)
    return pd.DataFrame({"class": predictions.classes, "support": support, "ap": ap})


def per_class_table(predictions: Predictions) -> pd.DataFrame:
    """The per-class table of a record's predictions (multi-label or single-label columns)."""
    return multi_label_table(predictions) if predictions.multilabel else single_label_table(predictions)


def normalised_confusion(predictions: Predictions) -> np.ndarray:
    """``[C, C]`` confusion matrix, rows = true class, columns = predicted class, each row summing to 1."""
    labels = np.arange(len(predictions.classes))
    return confusion_matrix(predictions.target, predictions.predicted(), labels=labels, normalize="true")


def plot_confusion(matrix: np.ndarray, classes: list[str], title: str, paths: list[Path]) -> None:
    """Draw ``matrix`` as a heatmap with class names on both axes and save it to each of ``paths``.

    The figure grows with the number of classes (about a quarter inch per class) and the font shrinks, so
    50 class names stay legible; cells are annotated with percentages only for up to 20 classes.
    """
    import seaborn as sns
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    count = len(classes)
    side = max(5.0, 0.24 * count + 2.5)
    font = 9 if count <= 20 else 7 if count <= 40 else 6
    figure = Figure(figsize=(side + 0.6, side), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    sns.heatmap(matrix, ax=axes, vmin=0.0, vmax=1.0, cmap="Blues", square=True, linewidths=0.2,
                linecolor="#e0e0e0", annot=count <= 20, fmt=".0%", annot_kws={"fontsize": font},
                xticklabels=classes, yticklabels=classes, cbar_kws={"shrink": 0.5, "label": "share of true class"})
    axes.set_xlabel("predicted class", fontsize=font + 2)
    axes.set_ylabel("true class", fontsize=font + 2)
    axes.set_title(title, fontsize=font + 1)
    axes.tick_params(axis="both", labelsize=font, length=2)
    axes.tick_params(axis="x", labelrotation=90)
    axes.tick_params(axis="y", labelrotation=0)
    with rc_context({"svg.fonttype": "none"}):  # SVG text stays text (searchable, small)
        for path in paths:
            figure.savefig(path)


def output_paths(record_path: Path, out: Path | None) -> dict[str, Path]:
    """Where the CSV and the confusion-matrix images of ``record_path`` go (beside it, or in ``out``)."""
    record_path = Path(record_path)
    folder = record_path.parent if out is None else Path(out)
    stem = record_path.stem
    return {"csv": folder / f"{stem}.classes.csv", "png": folder / f"{stem}.confusion.png",
            "svg": folder / f"{stem}.confusion.svg"}


def class_report(record_path: Path, out: Path | None = None) -> dict[str, Any]:
    """Per-class table of a record, written as CSV, plus the confusion-matrix figure for single-label tasks."""
    record_file = load_record(record_path)
    predictions = record_file.predictions()
    table = per_class_table(predictions)
    paths = output_paths(record_file.path, out)
    paths["csv"].parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(paths["csv"], index=False)
    files = {"csv": paths["csv"]}
    if not predictions.multilabel:
        kind = "official" if record_file.official else "NON-OFFICIAL"
        title = (f"{record_file.task} / {record_file.model} ({kind}, {len(predictions.clip_id)} clips)\n"
                 f"confusion matrix, normalised per true class")
        plot_confusion(normalised_confusion(predictions), predictions.classes.tolist(), title,
                       [paths["png"], paths["svg"]])
        files.update(png=paths["png"], svg=paths["svg"])
    rows = [{key: (None if isinstance(value, float) and math.isnan(value) else value) for key, value in row.items()}
            for row in table.to_dict(orient="records")]
    return {"record": str(record_file.path), "task": record_file.task, "model": record_file.model,
            "multilabel": predictions.multilabel, "clips": int(len(predictions.clip_id)),
            "splits": predictions.split_names(), "columns": list(table.columns), "rows": rows,
            "files": {key: str(path) for key, path in files.items()}}
