"""The points of a score-versus-complexity plot: reproduced records and published numbers of catalog models.

Every x value is measured by audiobench, never typed in: a record's own ``complexity`` block, or, for a
published score of a catalog model, the model's count on the meta device (:func:`measured_complexity`,
cached on disk). A published number whose model is not in the catalog has no measured complexity; it is
kept as an excluded row with the reason, never plotted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from audiobench.errors import AudiobenchError, UnknownNameError
from audiobench.report.records import RecordFile, load_records

REPRODUCED = "reproduced"
PUBLISHED = "published"

# Published metric names that mean the same quantity as an audiobench metric (the records' names).
PUBLISHED_METRIC_NAMES: dict[str, tuple[str, ...]] = {
    "accuracy": ("accuracy", "accuracy (overall)"),
    "mAP": ("mAP",),
}

# When a model has several published scores, the best-sourced one is plotted (the others are listed).
CONFIDENCE_ORDER = ("exact_table", "exact_text", "leaderboard_csv", "checkpoint_name", "third_party", "figure")
UNUSABLE_CONFIDENCE = frozenset({"ai_summary", "brief_seed"})

NOT_MEASURABLE = "not plotted: no measured complexity (model not in the audiobench catalog)"

Complexity = dict[str, Any]
Measure = Callable[[str], Complexity]


@dataclass(frozen=True)
class XAxis:
    """A complexity quantity read from a measured complexity block (base units: MACs, parameters, ms)."""

    name: str
    quantity: str
    path: tuple[str, ...]
    from_records_only: bool = False  # latency is never measured here: it comes from a record that has it

    def value(self, complexity: Complexity | None) -> float | None:
        """The quantity in base units, or None when the block does not have it."""
        node: Any = complexity
        for key in self.path:
            if not isinstance(node, dict) or node.get(key) is None:
                return None
            node = node[key]
        return float(node)


X_AXES: dict[str, XAxis] = {
    "macs": XAxis("macs", "MACs", ("macs", "total")),
    "params": XAxis("params", "parameters", ("params", "total")),
    "latency": XAxis("latency", "latency", ("latency", "network", "median_ms"), from_records_only=True),
}


def get_axis(name: str) -> XAxis:
    """The x axis called ``name`` (macs, params or latency)."""
    if name not in X_AXES:
        raise UnknownNameError(f"Unknown x quantity {name!r}.", hint=f"Use one of: {', '.join(X_AXES)}.")
    return X_AXES[name]


@dataclass
class Point:
    """One row of the plot's CSV: a plotted marker, or a number left out with the reason."""

    model: str
    family: str
    kind: str  # REPRODUCED or PUBLISHED
    score: float
    official: bool
    source: str  # record path, or the published source
    record_id: str = ""  # published record id
    x: float | None = None  # base units (MACs, parameters, ms)
    x_source: str = ""
    input_seconds: float | None = None
    score_std: float | None = None
    protocol: str = ""
    reason: str = ""  # why it is not plotted ("" when plotted)

    @property
    def plotted(self) -> bool:
        return not self.reason


@dataclass
class PointSet:
    """Everything a plot of ``metric`` on ``task`` against ``axis`` needs."""

    task: str
    metric: str
    axis: XAxis
    points: list[Point] = field(default_factory=list)
    task_protocol: str = ""

    @property
    def plotted(self) -> list[Point]:
        return [p for p in self.points if p.plotted]

    @property
    def excluded(self) -> list[Point]:
        return [p for p in self.points if not p.plotted]


def measured_complexity(model: str) -> Complexity:
    """Params/MACs of catalog model ``model`` for its standard input, counted on the meta device (cached)."""
    import torch

    from audiobench.complexity import cached_complexity
    from audiobench.models.loading import load_model

    with torch.device("meta"):
        built = load_model(model)
    return cached_complexity(built)


def catalog_model_ids() -> dict[str, str]:
    """Published model id (e.g. ``mn10_as``) -> catalog model name, through the record ids on the cards."""
    from audiobench.models.catalog import published_records
    from audiobench.registry import MODELS

    model_of_record = {record["id"]: record["model"] for record in published_records()}
    ids: dict[str, str] = {}
    for entry in MODELS:
        card = entry.info
        for number in getattr(card, "published", ()):
            if number.record_id in model_of_record:
                ids.setdefault(model_of_record[number.record_id], card.name)
    return ids


def read_published(path: Path) -> list[dict[str, Any]]:
    """The ``records`` list of a published-numbers YAML file."""
    path = Path(path)
    if not path.is_file():
        raise AudiobenchError(f"Published-numbers file {path} does not exist.",
                              hint="Give a YAML file with a top-level `records:` list (see leaderboards/published.yaml).")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise AudiobenchError(f"Published-numbers file {path} has no top-level `records:` list.",
                              hint="Use the schema of leaderboards/published.yaml.")
    return data["records"]


def as_fraction(value: float, unit: str) -> float:
    """A published value on the records' scale (fractions, not percent)."""
    return float(value) / 100.0 if str(unit).strip().lower() in ("percent", "%") else float(value)


def metric_matches(published_metric: str, metric: str) -> bool:
    """Whether a published metric name means audiobench's ``metric``."""
    names = PUBLISHED_METRIC_NAMES.get(metric, (metric,))
    return published_metric.strip().lower() in {name.lower() for name in names}


def choose_metric(task: str, metric: str | None, published: Iterable[dict[str, Any]]) -> tuple[str, str]:
    """The metric to plot (``--metric`` or the task card's) and the task card's protocol ('' without a card)."""
    from audiobench.tasks import get_task

    try:
        card = get_task(task)
    except UnknownNameError:
        card = None
    protocol = f"{card.protocol}" if card is not None else ""
    if metric:
        return metric, protocol
    if card is not None:
        return card.metric, protocol
    metrics = sorted({r["metric"] for r in published if r.get("task") == task})
    if metrics:
        raise AudiobenchError(f"Task {task!r} has no task card, so its metric must be named.",
                              hint=f"Add --metric; published metrics for {task}: {', '.join(metrics)}.")
    raise AudiobenchError(f"Task {task!r} has no task card and no published numbers.",
                          hint="Run `audiobench list tasks`, or check the task name in the published file.")


def _record_point(record: RecordFile, metric: str, axis: XAxis) -> Point:
    block = record.record.get("complexity")
    score = record.score(metric)
    protocol = record.record["protocol"]
    point = Point(model=record.model, family=record.record["model"].get("family") or (block or {}).get("family", ""),
                  kind=REPRODUCED, score=float(score["mean"]), score_std=score.get("std"),
                  official=record.official, source=str(record.path), x=axis.value(block),
                  x_source="the record's complexity block",
                  input_seconds=((block or {}).get("input") or {}).get("seconds"),
                  protocol=f"{protocol.get('name', '')}: {protocol.get('splits', '')}")
    if point.x is None:
        point.reason = f"not plotted: the record has no measured {axis.quantity}"
    return point


def reproduced_points(records: list[RecordFile], task: str, metric: str, axis: XAxis,
                      include_nonofficial: bool) -> list[Point]:
    """One point per model from the records of ``task`` (the newest record of a model wins)."""
    points: list[Point] = []
    newest: dict[tuple[str, bool], Point] = {}
    for record in records:  # sorted by file name, i.e. by timestamp within a task and model
        if record.task != task or metric not in record.record.get("metrics", {}):
            continue
        point = _record_point(record, metric, axis)
        if not point.official and not include_nonofficial:
            point.reason = "not plotted: non-official protocol (give --include-nonofficial)"
        elif point.plotted:
            key = (point.model, point.official)
            if key in newest:
                newest[key].reason = f"not plotted: superseded by the newer record {Path(point.source).name}"
            newest[key] = point
        points.append(point)
    return points


def _rank(record: dict[str, Any]) -> tuple[int, str]:
    confidence = record.get("confidence", "")
    order = CONFIDENCE_ORDER.index(confidence) if confidence in CONFIDENCE_ORDER else len(CONFIDENCE_ORDER)
    return order, str(record.get("id", ""))


def _published_point(record: dict[str, Any], model: str, family: str) -> Point:
    return Point(model=model, family=family, kind=PUBLISHED,
                 score=as_fraction(record["value"], record.get("unit", "fraction")), official=True,
                 source=str(record.get("source", "")), record_id=str(record.get("id", "")),
                 protocol=str(record.get("protocol", "")))


def published_points(published: list[dict[str, Any]], task: str, metric: str, axis: XAxis, measure: Measure,
                     records: list[RecordFile]) -> list[Point]:
    """One point per catalog model from the published numbers of ``task``/``metric``, x measured here."""
    from audiobench.registry import MODELS

    ids = catalog_model_ids()
    families = {entry.name: getattr(entry.info, "family", "") for entry in MODELS}
    chosen: dict[str, dict[str, Any]] = {}
    points: list[Point] = []
    candidates = [r for r in published if r.get("task") == task and metric_matches(str(r.get("metric", "")), metric)]
    for record in sorted(candidates, key=_rank):
        model = ids.get(record.get("model", ""))
        point = _published_point(record, model or str(record.get("model", "")),
                                 families.get(model, "") if model else str(record.get("family", "")))
        points.append(point)
        if record.get("confidence") in UNUSABLE_CONFIDENCE:
            point.reason = f"not plotted: confidence {record['confidence']!r} is not a usable target"
        elif model is None:
            point.reason = NOT_MEASURABLE
        elif model in chosen:
            point.reason = f"not plotted: another published score of {model} is plotted ({chosen[model].get('id')})"
        else:
            chosen[model] = record
            _measure_published(point, axis, measure, records)
    return sorted(points, key=lambda p: p.record_id)


def _measure_published(point: Point, axis: XAxis, measure: Measure, records: list[RecordFile]) -> None:
    """Fill the x of a published point from a measurement of its catalog model (or mark it not plotted)."""
    if axis.from_records_only:
        for record in reversed(records):  # newest first
            block = record.record.get("complexity")
            if record.model == point.model and axis.value(block) is not None:
                point.x, point.input_seconds = axis.value(block), block["input"]["seconds"]
                point.x_source = f"{axis.quantity} measured in {record.path.name}"
                return
        point.reason = f"not plotted: no record of the model has a measured {axis.quantity}"
        return
    try:
        block = measure(point.model)
    except Exception as error:  # noqa: BLE001 - one model that cannot be built must not stop the plot
        point.reason = f"not plotted: measuring {point.model} failed ({type(error).__name__}: {error})"
        return
    point.x, point.input_seconds = axis.value(block), (block.get("input") or {}).get("seconds")
    point.x_source = "measured by audiobench (meta device, cached count)"
    if point.x is None:
        point.reason = f"not plotted: no measured {axis.quantity}"


def gather_points(task: str, x: str, results_dir: Path | None, published_file: Path | None,
                  metric: str | None = None, include_nonofficial: bool = False,
                  measure: Measure = measured_complexity) -> PointSet:
    """Reproduced and published points of ``task`` against the measured quantity ``x``.

    ``results_dir`` None skips the records; ``published_file`` None skips the published numbers.
    Raises :class:`AudiobenchError` when nothing can be plotted.
    """
    axis = get_axis(x)
    published = read_published(published_file) if published_file is not None else []
    records = load_records(results_dir) if results_dir is not None else []
    metric, protocol = choose_metric(task, metric, published)
    points = reproduced_points(records, task, metric, axis, include_nonofficial)
    points += published_points(published, task, metric, axis, measure, records)
    for point in points:
        if point.plotted and point.x is not None and point.x <= 0:
            point.reason = f"not plotted: measured {axis.quantity} is 0 (no network), not on a log axis"
    found = PointSet(task=task, metric=metric, axis=axis, points=points, task_protocol=protocol)
    if not found.plotted:
        reasons = Counter(p.reason for p in found.excluded)
        detail = "; ".join(f"{n} x {reason}" for reason, n in reasons.most_common()) or "no records and no published numbers"
        raise AudiobenchError(f"Nothing to plot for task {task!r}, metric {metric!r}, x {axis.name!r}: {detail}.",
                              hint="Check --task/--metric, run `audiobench run` for the task, or choose another --x.")
    return found
