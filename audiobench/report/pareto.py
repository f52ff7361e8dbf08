"""Score against measured complexity: the Pareto plot (PNG + SVG) and the CSV of its points.

Filled markers are scores reproduced by audiobench (result records), hollow markers are published scores
placed at the complexity audiobench measures for the same model. The Pareto front (lower complexity,
higher score) runs over official reproduced and published points; non-official records, when shown at
all, are marked and never part of it.
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from audiobench.report.points import PUBLISHED, REPRODUCED, Point, PointSet

CSV_COLUMNS = ("model", "family", "kind", "score", "score_std", "metric", "x", "x_unit", "x_quantity",
               "x_input_seconds", "x_source", "official", "on_front", "plotted", "reason", "record_id", "source",
               "protocol")


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``(x, score)`` points (lower x and higher score are better), by x.

    A point is dominated when another is at least as good on both and better on one; equal points are
    all kept.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = -math.inf
    best_x = math.nan
    for i in order:
        x, score = points[i]
        if score > best or (score == best and x == best_x):
            front.append(i)
            if score > best:
                best, best_x = score, x
    return front


@dataclass(frozen=True)
class Scale:
    """How x is shown: base units divided by ``factor``, named ``unit``."""

    factor: float
    unit: str


def x_scale(axis_name: str, values: Sequence[float]) -> Scale:
    """MACs in G (or M when every model is below 1 G), parameters in M, latency in ms."""
    if axis_name == "macs":
        return Scale(1e9, "G") if max(values, default=0.0) >= 1e9 else Scale(1e6, "M")
    if axis_name == "params":
        return Scale(1e6, "M")
    return Scale(1.0, "ms")


def front_members(found: PointSet) -> set[int]:
    """ids of the plotted points on the Pareto front (non-official reproduced points never are)."""
    eligible = [p for p in found.plotted if p.official]
    return {id(eligible[i]) for i in pareto_front([(p.x, p.score) for p in eligible])}  # type: ignore[misc]


def write_csv(found: PointSet, path: Path, scale: Scale, on_front: set[int]) -> None:
    """Every point (plotted or not, with the reason) as one CSV row."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for p in sorted(found.points, key=lambda p: (not p.plotted, p.kind, p.x or 0.0, p.model)):
            writer.writerow({
                "model": p.model, "family": p.family, "kind": p.kind, "score": f"{p.score:.6g}",
                "score_std": "" if p.score_std is None else f"{p.score_std:.6g}", "metric": found.metric,
                "x": "" if p.x is None else f"{p.x / scale.factor:.6g}", "x_unit": _unit_label(found, scale),
                "x_quantity": found.axis.quantity,
                "x_input_seconds": "" if p.input_seconds is None else f"{p.input_seconds:g}",
                "x_source": p.x_source, "official": p.official, "on_front": id(p) in on_front,
                "plotted": p.plotted, "reason": p.reason, "record_id": p.record_id, "source": p.source,
                "protocol": p.protocol,
            })


def _unit_label(found: PointSet, scale: Scale) -> str:
    return {"macs": f"{scale.unit}MACs", "params": f"{scale.unit} parameters"}.get(found.axis.name, scale.unit)


def protocol_summary(found: PointSet, width: int = 110) -> str:
    """One or two lines naming the protocols behind the plotted scores."""
    parts = []
    reproduced = [p for p in found.plotted if p.kind == REPRODUCED]
    if reproduced:
        names = Counter(p.protocol.split(":")[0] for p in reproduced)
        official = "official splits" if all(p.official for p in reproduced) else "incl. NON-OFFICIAL splits"
        parts.append(f"reproduced: {', '.join(names)} ({official})")
    published = [p for p in found.plotted if p.kind == PUBLISHED]
    if published:
        protocol = Counter(p.protocol for p in published).most_common(1)[0][0]
        parts.append(f"published: {textwrap.shorten(protocol, width=width, placeholder=' ...')}")
    elif found.task_protocol and not reproduced:
        parts.append(found.task_protocol)
    return "\n".join(parts)


def output_stem(found: PointSet) -> str:
    """``pareto_<task>_<metric>_<x>`` with characters unsafe in file names replaced."""
    raw = f"pareto_{found.task}_{found.metric}_{found.axis.name}"
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in raw)


def write_pareto(found: PointSet, out_dir: Path) -> dict[str, Path]:
    """Draw the figure (PNG and SVG) and write the CSV into ``out_dir``; returns the three paths."""
    from audiobench.report.pareto_plot import draw

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scale = x_scale(found.axis.name, [p.x for p in found.plotted if p.x is not None])
    on_front = front_members(found)
    stem = out_dir / output_stem(found)
    paths = {"png": stem.with_suffix(".png"), "svg": stem.with_suffix(".svg"), "csv": stem.with_suffix(".csv")}
    figure = draw(found, scale, _unit_label(found, scale), on_front, protocol_summary(found))
    figure.savefig(paths["png"], dpi=figure.dpi, bbox_inches="tight")
    figure.savefig(paths["svg"], bbox_inches="tight", metadata={"Date": None})
    write_csv(found, paths["csv"], scale, on_front)
    return paths


def points_on_front(found: PointSet) -> list[Point]:
    """The plotted points on the Pareto front, by x."""
    members = front_members(found)
    return sorted((p for p in found.plotted if id(p) in members), key=lambda p: p.x or 0.0)
