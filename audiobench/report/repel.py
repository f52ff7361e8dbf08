"""Place point labels so they overlap neither each other, nor the markers, nor given line segments.

A greedy placement in display pixels: labels are placed one after the other (in the order given), each at
the nearest free candidate position around its point (right, left, then further up, down and sideways);
a label that ends up away from its point gets a thin leader line. Deterministic, and fast for the few
dozen labels of a report figure.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.text import Annotation

Box = tuple[float, float, float, float]  # left, bottom, right, top (pixels)


def _overlaps(a: Box, b: Box, pad: float) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def _distance(box: Box, point: np.ndarray) -> float:
    """Distance (pixels) from a point to the nearest edge of a box (0 inside)."""
    return float(np.hypot(max(box[0] - point[0], 0.0, point[0] - box[2]), max(box[1] - point[1], 0.0, point[1] - box[3])))


def _candidates(width: float, height: float, gap: float, rows: int = 24, shifts: int = 6,
                left_penalty: float = 14.0) -> list[tuple[float, float]]:
    """Offsets (left edge, vertical centre) of a label relative to its point, nearest first (right preferred)."""
    offsets = []
    for shift in range(shifts):
        extra = shift * 1.5 * height
        for row in range(-rows, rows + 1):
            dy = row * (height * 0.55)
            for dx in (gap + extra, -gap - width - extra):
                near_x = dx if dx > 0 else dx + width
                cost = float(np.hypot(near_x, dy)) + (0.5 * abs(dx) if shift else 0.0) + (left_penalty if dx < 0 else 0.0)
                offsets.append((cost, dx, dy))
    offsets.sort(key=lambda o: o[0])
    return [(dx, dy) for _, dx, dy in offsets]


def segment_boxes(ax: Axes, xs: Sequence[float], ys: Sequence[float], thickness: float = 3.0) -> list[Box]:
    """Thin boxes (pixels) along a horizontal/vertical polyline given in data coordinates (e.g. a step line)."""
    pixels = ax.transData.transform(np.column_stack([xs, ys])) if len(xs) else np.zeros((0, 2))
    boxes = []
    for (x0, y0), (x1, y1) in zip(pixels[:-1], pixels[1:]):
        boxes.append((min(x0, x1) - thickness, min(y0, y1) - thickness, max(x0, x1) + thickness,
                      max(y0, y1) + thickness))
    return boxes


def place_labels(ax: Axes, anchors: np.ndarray, texts: list[str], order: Iterable[int] | None = None,
                 obstacles: Sequence[Box] = (), fontsize: float = 8.0, marker_radius_px: float = 8.0,
                 leader_px: float = 20.0, pad: float = 2.0) -> list[Annotation]:
    """Annotate the data points ``anchors`` (N x 2, data coordinates) with ``texts``, without overlaps.

    ``order`` is the order of placement (earlier labels get the closer spots); ``obstacles`` are extra
    pixel boxes to keep clear of. The axes limits must be final. A label with no free spot is put right
    of its point.
    """
    figure = ax.figure
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    anchors_px = ax.transData.transform(anchors) if len(anchors) else np.zeros((0, 2))
    to_points = 72.0 / figure.dpi
    r = marker_radius_px
    blocked: list[Box] = [(x - r, y - r, x + r, y + r) for x, y in anchors_px] + list(obstacles)
    frame = ax.get_window_extent(renderer)
    annotations = [ax.annotate(text, xy=tuple(xy), xytext=(0, 0), textcoords="offset points", ha="left",
                               va="center", fontsize=fontsize, zorder=5) for xy, text in zip(anchors, texts)]
    for i in (list(order) if order is not None else range(len(texts))):
        extent = annotations[i].get_window_extent(renderer)
        width, height = extent.width, extent.height
        x, y = anchors_px[i]
        chosen = None
        fallback = None
        for dx, dy in _candidates(width, height, r + 2.0):
            box = (x + dx, y + dy - height / 2, x + dx + width, y + dy + height / 2)
            inside = frame.x0 <= box[0] and box[2] <= frame.x1 and frame.y0 <= box[1] and box[3] <= frame.y1
            if not inside or any(_overlaps(box, other, pad) for other in blocked):
                continue
            own = _distance(box, anchors_px[i])
            nearest_other = min((_distance(box, other) for k, other in enumerate(anchors_px) if k != i),
                                default=np.inf)
            if nearest_other >= own:
                chosen = (dx, dy)  # free, and no other marker is nearer the label than its own
                break
            if nearest_other > 2 * r + 4.0:  # not touching another marker: readable with its leader line
                fallback = fallback or (dx, dy)
        chosen = chosen or fallback or (r + 2.0, 0.0)
        dx, dy = chosen
        blocked.append((x + dx, y + dy - height / 2, x + dx + width, y + dy + height / 2))
        annotations[i].set_position((dx * to_points, dy * to_points))
        near_x = dx if dx > 0 else dx + width
        if np.hypot(near_x, dy) > leader_px:
            ax.annotate("", xy=annotations[i].xy, xytext=(near_x * to_points, dy * to_points),
                        textcoords="offset points", zorder=4,
                        arrowprops={"arrowstyle": "-", "color": "0.55", "lw": 0.6, "shrinkA": 1, "shrinkB": 5})
    return annotations
