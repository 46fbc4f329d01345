"""The one figure style of the project: limits from the bulk, points outside at the edge, reference lines, cut bars.

Every figure function of :mod:`analysis.study_plots`, :mod:`analysis.figures` and
:mod:`analysis.compare` draws through these helpers and returns a :class:`Drawn`:
the matplotlib ``Figure`` (saved, then closed; its axes keep their limits for a
test to read), the PNG's path, and a caption that says in one line what to read
from the figure and names the points drawn outside. The limits themselves are
computed in :mod:`analysis.limits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import Normalize, is_color_like  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from analysis.limits import Limits, Outside, bulk, outside_text  # noqa: E402

EV_LABEL = "inner-validation EV"
NOISE_CEILING = "noise ceiling"
# Reference lines: the ideal observers dashed in one colour, the noise ceiling dash-dotted in black.
OBSERVER_STYLE = {"color": "#7b3fa0", "ls": "--", "lw": 1.1}
CEILING_STYLE = {"color": "k", "ls": "-.", "lw": 1.1}
# Markers of points drawn at an axis' edge: a triangle pointing the way the point lies.
EDGE_MARKERS = {("y", "low"): "v", ("y", "high"): "^", ("x", "low"): "<", ("x", "high"): ">"}
EDGE_NOTE = "outside the axis (caption)"


@dataclass
class Drawn:
    """A figure as written.

    Attributes
    ----------
    figure : matplotlib.figure.Figure
        Saved and closed; its axes keep their limits.
    path : Path
        The PNG.
    caption : str
        One line on what to read from it, then the points drawn outside (:func:`analysis.limits.outside_text`).
    outside : list of Outside
        The points drawn at an edge instead of where they lie.
    """

    figure: Figure
    path: Path
    caption: str
    outside: list = field(default_factory=list)


def save(fig: Figure, path: Path, read: str, outside: list[Outside] = (), limits: Limits | None = None,
         what: str = "point", note: str | None = None, dpi: int = 100, unit: str = "") -> Drawn:
    """Write ``fig`` to ``path`` and close it; the note on the points outside goes under the figure too (a PNG is
    also read alone, in MLflow or a final training's folder).

    Parameters
    ----------
    read : str
        What to read from the figure, one sentence.
    outside : list of Outside
        Points drawn at an edge of the axis whose ``limits`` are given.
    what, unit : str
        What a point is, for the count (``point``, ``site``, ``prediction``); the values' unit (``" %"``).
    note : str, optional
        The sentence on the points outside, for a figure whose axes have different limits; default: from
        ``outside`` and ``limits``.
    """
    outside = list(outside)
    if note is None:
        note = outside_text(outside, limits, what, unit) if outside and limits is not None else ""
    if note:
        fig.text(0.005, 0.005, note, fontsize=7, ha="left", va="bottom", wrap=True, color="0.25")
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    else:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return Drawn(fig, Path(path), " ".join(p for p in (read, note) if p), outside)


def set_limits(ax, limits: Limits, axis: str = "y") -> None:
    """Fix an axis to ``limits`` (matplotlib's autoscaling would follow the points outside)."""
    (ax.set_ylim if axis == "y" else ax.set_xlim)(limits.low, limits.high)


def mark_outside(ax, positions, values, limits: Limits, axis: str = "y", color="k", size: float = 40,
                 zorder: float = 5) -> int:
    """Draw the values outside ``limits`` at the axis' edge, each a triangle pointing off the axis.

    Parameters
    ----------
    positions : array-like, shape (n,)
        The points' other coordinate (x for a y axis).
    values : array-like, shape (n,)
        Their values on ``axis``; those inside the limits are not drawn here.
    color : colour or sequence of colours, shape (n,)

    Returns
    -------
    int
        The points drawn.
    """
    positions, values = np.asarray(positions, dtype=float), np.asarray(values, dtype=float)
    colors = None if is_color_like(color) else np.asarray(list(color), dtype=object)
    drawn = 0
    for side, mask, edge in (("low", values < limits.low, limits.low), ("high", values > limits.high, limits.high)):
        if not mask.any():
            continue
        at = np.full(mask.sum(), edge)
        xy = (positions[mask], at) if axis == "y" else (at, positions[mask])
        paint = {"c": list(colors[mask])} if colors is not None else {"color": color}
        # clip_on=False: the triangle sits on the spine, half outside, where no data point can be.
        ax.scatter(*xy, marker=EDGE_MARKERS[(axis, side)], s=size, edgecolors="k", linewidths=0.6,
                   clip_on=False, zorder=zorder, **paint)
        drawn += int(mask.sum())
    return drawn


def count_outside(ax, values, limits: Limits, color="k") -> int:
    """On a histogram over x: one triangle at each edge beyond which values lie, with their count above it.

    Parameters
    ----------
    values : array-like, shape (n,)

    Returns
    -------
    int
        The values outside.
    """
    values = np.asarray(values, dtype=float)
    total = 0
    for side, n, edge in (("low", int((values < limits.low).sum()), limits.low),
                          ("high", int((values > limits.high).sum()), limits.high)):
        if not n:
            continue
        ax.scatter([edge], [0], marker=EDGE_MARKERS[("x", side)], s=60, color=color, edgecolors="k",
                   linewidths=0.6, clip_on=False, zorder=5)
        ax.annotate(str(n), (edge, 0), xytext=(6 if side == "low" else -6, 8), textcoords="offset points",
                    ha="left" if side == "low" else "right", fontsize=8, fontweight="bold")
        total += n
    return total


def edge_line(ax, xs, values, limits: Limits, axis: str = "y", **line_kw):
    """A line through the points inside ``limits``; a segment to a point outside runs dotted to the axis' edge,
    where :func:`mark_outside` draws that point (a steep segment would otherwise look like a drop at the last point
    inside).

    Parameters
    ----------
    xs, values : array-like, shape (n,)
    line_kw
        Passed to ``ax.plot`` for the solid line (``color``, ``lw``, ``marker``, ``label``...).

    Returns
    -------
    matplotlib.lines.Line2D
        The solid line (its colour is the figure's colour for the series).
    """
    xs, values = np.asarray(xs, dtype=float), np.asarray(values, dtype=float)
    inside = np.array([limits.contains(v) for v in values], dtype=bool) | ~np.isfinite(values)
    shown = np.where(inside, values, np.nan)
    (line,) = (ax.plot(xs, shown, **line_kw) if axis == "y" else ax.plot(shown, xs, **line_kw))
    clipped = limits.clip(values)
    for i in range(len(values) - 1):
        if inside[i] != inside[i + 1] and np.isfinite(values[i]) and np.isfinite(values[i + 1]):
            pair = (xs[i:i + 2], clipped[i:i + 2])
            ax.plot(*(pair if axis == "y" else pair[::-1]), color=line.get_color(), lw=line.get_linewidth(),
                    ls=":", zorder=line.get_zorder())
    return line


def reference_style(name: str) -> dict:
    """The line style of a reference: the noise ceiling apart from the ideal observers."""
    return CEILING_STYLE if name == NOISE_CEILING else OBSERVER_STYLE


def reference_lines(ax, references: dict[str, float] | None, axis: str = "y", fmt: str = "{:.3f}",
                    label: bool = True) -> None:
    """Labelled lines at each reference (name -> value): horizontal on a y axis, vertical on an x axis.

    A horizontal line's label sits above it at the right end; labels of lines closer than a label's height go to
    the left end, then the middle, in turn. A vertical line's label runs down from the top, on the side away from
    a close neighbour.
    """
    if not references:
        return
    ordered = sorted(((v, n) for n, v in references.items() if v is not None and np.isfinite(v)))
    lo, hi = (ax.get_ylim() if axis == "y" else ax.get_xlim())
    span = (hi - lo) or 1.0
    last, turn = None, 0
    for value, name in ordered:
        style = reference_style(name)
        (ax.axhline if axis == "y" else ax.axvline)(value, zorder=1.5, **style)
        if not label:
            continue
        turn = turn + 1 if last is not None and abs(value - last) < 0.06 * span else 0
        last = value
        box = {"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5}
        if axis == "y":
            x, ha = ((0.995, "right"), (0.005, "left"), (0.5, "center"))[turn % 3]
            ax.text(x, value, f"{name} {fmt.format(value)}", ha=ha, va="bottom", fontsize=7, color=style["color"],
                    zorder=6, bbox=box, transform=blended_transform_factory(ax.transAxes, ax.transData))
        else:
            # The short name ("object", "category") keeps the label above the bulk of a histogram; the caption says
            # what the lines are.
            ax.text(value, 0.99, f"{name.replace(' ideal observer', '')} {fmt.format(value)}",
                    ha="left" if turn % 2 else "right", va="top", rotation=90, fontsize=7, color=style["color"],
                    zorder=6, bbox=box, transform=blended_transform_factory(ax.transData, ax.transAxes))


def cut_bars(ax, x, heights, limits: Limits, colors, fmt: str = "{:.1f}", **bar_kw) -> list[int]:
    """Bars from 0, those beyond ``limits`` cut at the axis' edge, marked there and labelled with their value.

    Parameters
    ----------
    x, heights : array-like, shape (n,)
    colors : sequence of colours, shape (n,)

    Returns
    -------
    list of int
        The indices of the cut bars.
    """
    x, heights = np.asarray(x, dtype=float), np.asarray(heights, dtype=float)
    shown = limits.clip(heights)
    ax.bar(x, shown, color=colors, **bar_kw)
    cut = [i for i, h in enumerate(heights) if np.isfinite(h) and not limits.contains(h)]
    for i in cut:
        low = heights[i] < limits.low
        ax.scatter([x[i]], [shown[i]], marker=EDGE_MARKERS[("y", "low" if low else "high")], s=70, c="k",
                   clip_on=False, zorder=5)
        # The value, inside the cut bar near its cut end: the bar's length no longer says it.
        inset = 0.04 * (limits.high - limits.low)
        ax.text(x[i], shown[i] + (inset if low else -inset), fmt.format(heights[i]), ha="center",
                va="bottom" if low else "top", fontsize=8, fontweight="bold", zorder=6,
                bbox={"facecolor": "white", "edgecolor": "k", "lw": 0.5, "pad": 1.5})
    return cut


def colour_scale(values, references=()) -> tuple[Normalize, str]:
    """A colour scale over the bulk of ``values`` (:func:`analysis.limits.bulk`), clipping the rest to its ends.

    Returns
    -------
    (Normalize, extend)
        ``extend`` for the colour bar: ``neither``, ``min``, ``max`` or ``both``, by the side values lie beyond.
    """
    found = bulk(values, references)
    low, high = found if found is not None else (0.0, 1.0)
    if high <= low:
        low, high = low - 1e-3, high + 1e-3
    v = np.asarray(values, dtype=float)
    below, above = bool((v < low).any()), bool((v > high).any())
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}
    return Normalize(low, high, clip=True), extend[(below, above)]


def integer_ticks(ax, axis: str = "x") -> None:
    """Whole-number ticks, for an integer hyperparameter (5 and 7 blocks, not 5.25)."""
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
