"""Drawing of the Pareto plot (matplotlib Agg canvas, seaborn styling; no pyplot state is touched)."""

from __future__ import annotations


import numpy as np
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator

from audiobench.report.pareto import Scale
from audiobench.report.points import PUBLISHED, Point, PointSet
from audiobench.report.repel import place_labels, segment_boxes

NONOFFICIAL_EDGE = "0.45"


def _style(point: Point, colour: tuple[float, float, float]) -> dict[str, object]:
    """Marker style: filled = reproduced, hollow = published, grey-edged diamond = non-official."""
    if point.kind == PUBLISHED:
        return {"marker": "o", "facecolor": "white", "edgecolor": colour, "linewidths": 1.8}
    if not point.official:
        return {"marker": "D", "facecolor": colour, "edgecolor": NONOFFICIAL_EDGE, "linewidths": 2.0}
    return {"marker": "o", "facecolor": colour, "edgecolor": "black", "linewidths": 0.7}


def _label(point: Point) -> str:
    return point.model if point.official else f"{point.model} (non-official)"


def _grouped(ax: Axes, points: list[Point], factor: float, tolerance_px: float = 2.5) -> list[list[Point]]:
    """Points drawn (within ``tolerance_px``) at the same place in the same style share one marker and label."""
    pixels = ax.transData.transform([[p.x / factor, p.score] for p in points])
    groups: list[list[Point]] = []
    where: list[np.ndarray] = []
    for point, pixel in zip(points, pixels):
        for group, anchor in zip(groups, where):
            head = group[0]
            same_style = (head.kind, head.official, head.family) == (point.kind, point.official, point.family)
            if same_style and np.all(np.abs(anchor - pixel) <= tolerance_px):
                group.append(point)
                break
        else:
            groups.append([point])
            where.append(pixel)
    return groups


def _group_label(group: list[Point]) -> str:
    """``name``, or several names sharing leading ``-`` segments as ``passt-s-{s12, s16}`` (else ``a / b``)."""
    names = [_label(p) for p in group]
    if len(names) == 1:
        return names[0]
    parts = [name.split("-") for name in names]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    if common < 2:  # e.g. passt-s and passt-s-ap4761: no useful shared stem
        return " / ".join(names)
    return "-".join(parts[0][:common]) + "-{" + ", ".join("-".join(p[common:]) for p in parts) + "}"


def _x_label(found: PointSet, unit: str) -> str:
    seconds = {p.input_seconds for p in found.plotted}
    clip = f" per {seconds.pop():g} s clip" if len(seconds) == 1 and found.axis.name != "params" else ""
    what = {"macs": "MACs", "params": "parameters", "latency": "network latency (batch 1)"}[found.axis.name]
    return f"{what}{clip} [{unit}], measured by audiobench (log scale; lower is better)"


def _step_vertices(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """Corners of the 'steps-post' line through the points (to keep labels off it)."""
    vx, vy = [], []
    for i, (x, y) in enumerate(zip(xs, ys)):
        if i:
            vx.append(x)
            vy.append(ys[i - 1])
        vx.append(x)
        vy.append(y)
    return vx, vy


def _x_limits(values: np.ndarray) -> tuple[float, float]:
    """Log-scale limits: a little room on the left, room for labels on the right."""
    lo, hi = float(values.min()), float(values.max())
    if lo <= 0:
        raise ValueError("the x axis is logarithmic: every x value must be positive")
    return lo / 10 ** 0.15, hi * 10 ** 0.6


def _y_limits(values: np.ndarray) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    span = max(hi - lo, 0.02)
    return lo - 0.06 * span, hi + 0.08 * span


def draw(found: PointSet, scale: Scale, unit_label: str, on_front: set[int], subtitle: str) -> Figure:
    """The figure: markers by family and kind, the Pareto front as a step line, labels, legends."""
    plotted = found.plotted
    families = sorted({p.family for p in plotted})
    palette = dict(zip(families, sns.color_palette("colorblind", max(len(families), 1))))
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        figure = Figure(figsize=(12, 8.5), dpi=150)
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
        xs = np.array([p.x / scale.factor for p in plotted])
        ys = np.array([p.score for p in plotted])
        ax.set_xscale("log")
        ax.set_xlim(*_x_limits(xs))
        ax.set_ylim(*_y_limits(ys))
        decades = np.log10(ax.get_xlim()[1] / ax.get_xlim()[0])
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades < 5 else (1.0, 3.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        groups = _grouped(ax, plotted, scale.factor)
        for group in groups:
            for p in group:
                ax.scatter([p.x / scale.factor], [p.score], s=50, zorder=3, **_style(p, palette[p.family]))
        front = sorted((p for p in plotted if id(p) in on_front), key=lambda p: p.x)
        if front:
            ax.step([p.x / scale.factor for p in front], [p.score for p in front], where="post", color="0.25",
                    lw=1.3, ls="--", zorder=2)
        ax.set_xlabel(_x_label(found, scale.unit))
        ax.set_ylabel(f"{found.metric} (higher is better)")
        ax.set_title(f"{found.task}: {found.metric} against measured {found.axis.quantity}", loc="left",
                     fontsize=14, pad=30 if "\n" in subtitle else 18)
        ax.text(0, 1.01, subtitle, transform=ax.transAxes, fontsize=8, va="bottom", ha="left", color="0.3")
        _legends(ax, found, palette, bool(front))
        anchors = np.array([[g[0].x / scale.factor, g[0].score] for g in groups])
        texts = [_group_label(g) for g in groups]
        on = [any(id(p) in on_front for p in g) for g in groups]
        order = sorted(range(len(groups)), key=lambda i: (not on[i], -anchors[i][1]))
        step_x, step_y = _step_vertices([p.x / scale.factor for p in front], [p.score for p in front])
        annotations = place_labels(ax, anchors, texts, order=order, obstacles=segment_boxes(ax, step_x, step_y))
        for annotation, bold in zip(annotations, on):
            if bold:
                annotation.set_fontweight("bold")
    return figure


def _legends(ax: object, found: PointSet, palette: dict[str, tuple], has_front: bool) -> None:
    """Family colours, and what filled / hollow / grey-edged markers and the dashed line mean."""
    family_handles = [Line2D([], [], marker="o", ls="", markerfacecolor=colour, markeredgecolor=colour,
                             markersize=8, label=family or "(unknown)") for family, colour in palette.items()]
    kinds = {p.kind for p in found.plotted}
    grey = "0.35"
    kind_handles = []
    if "reproduced" in kinds:
        kind_handles.append(Line2D([], [], marker="o", ls="", markerfacecolor=grey, markeredgecolor="black",
                                   markersize=8, label="reproduced (audiobench)"))
    if any(not p.official for p in found.plotted):
        kind_handles.append(Line2D([], [], marker="D", ls="", markerfacecolor=grey, markeredgecolor=NONOFFICIAL_EDGE,
                                   markeredgewidth=2, markersize=7, label="reproduced, NON-OFFICIAL protocol\n"
                                                                            "(not on the front)"))
    if PUBLISHED in kinds:
        kind_handles.append(Line2D([], [], marker="o", ls="", markerfacecolor="white", markeredgecolor=grey,
                                   markeredgewidth=1.8, markersize=8,
                                   label=f"published (score),\n{found.axis.quantity} measured by audiobench"))
    if has_front:
        kind_handles.append(Line2D([], [], color="0.25", ls="--", lw=1.3, label="Pareto front (bold labels)"))
    first = ax.legend(handles=family_handles, title="family", loc="upper left",  # type: ignore[attr-defined]
                      bbox_to_anchor=(1.01, 1.0), fontsize=9, title_fontsize=10, frameon=False)
    ax.add_artist(first)  # type: ignore[attr-defined]
    ax.legend(handles=kind_handles, title="marker", loc="lower left", bbox_to_anchor=(1.01, 0.0),  # type: ignore[attr-defined]
              fontsize=9, title_fontsize=10, frameon=False)
