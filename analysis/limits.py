"""Axis limits from the bulk of the data, and the points left outside them.

One diverged trial (an inner EV of -30 where the others lie between 0 and 0.15)
must not set an axis: every figure of the project takes its limits from the
bulk of its values and its reference lines (the ideal observers, the noise
ceiling), and draws the points outside at the axis' edge, named in its caption.

The bulk: values within ``fence`` robust standard deviations (1.4826 x the
median absolute deviation) of the median of the values and the references
together. Median and MAD hold until half the values are wild, and the references
anchor them when a figure has two or three values (an isolation plot), where no
statistic of the values alone can tell which one is wrong. Nothing here draws;
:mod:`analysis.style` applies the limits to matplotlib axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import groupby

import numpy as np

# Robust standard deviations from the median beyond which a value is outside the bulk: wide enough that a study's
# own spread (first epochs, pruned trials, weak layers) stays on the axis, narrow enough that a divergence does not.
FENCE = 6.0
# Share of the limits' span added on each side, so that no point sits on a spine.
MARGIN = 0.08
# Scale floor, as a share of the centre's magnitude: a bulk of equal values (MAD 0) still admits values near it.
SCALE_FLOOR = 0.1
# Points named in a caption; more are counted.
NAMED = 6


@dataclass(frozen=True)
class Limits:
    """An axis' range: ``low`` to ``high``, the bulk's range plus a margin."""

    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def clip(self, values: np.ndarray) -> np.ndarray:
        """``values`` moved onto the limits where outside (NaN stays NaN)."""
        return np.clip(np.asarray(values, dtype=float), self.low, self.high)


@dataclass(frozen=True)
class Outside:
    """A point drawn at the axis' edge instead of where it lies.

    Attributes
    ----------
    name : str
        What the point is (a trial id, a model, a site).
    value : float
        Where it lies.
    at : str
        Where in the figure, for a name with several points (``epoch 3``); empty when one point.
    """

    name: str
    value: float
    at: str = ""


def _finite(values) -> np.ndarray:
    a = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float).ravel()
    return a[np.isfinite(a)]


def bulk(values, references=(), fence: float = FENCE) -> tuple[float, float] | None:
    """The range of the values inside the fences (see the module), references included.

    Parameters
    ----------
    values : array-like, shape (n,)
        NaN and infinite values are ignored (a failed trial's missing score).
    references : array-like, shape (k,)
        Values the axis always shows (ideal observers, noise ceiling, a bar's base at 0).

    Returns
    -------
    (low, high), or None when there is no finite value and no reference.
    """
    v, refs = _finite(values), _finite(references)
    pool = np.concatenate([v, refs])
    if not len(pool):
        return None
    centre = float(np.median(pool))
    scale = max(1.4826 * float(np.median(np.abs(pool - centre))), SCALE_FLOOR * abs(centre), 1e-12)
    inside = v[np.abs(v - centre) <= fence * scale]
    kept = np.concatenate([inside, refs])
    if not len(kept):  # every value wild and no reference: the median, which at least one value is near
        kept = np.array([centre])
    return float(kept.min()), float(kept.max())


def robust_limits(values, references=(), margin: float = MARGIN, fence: float = FENCE) -> Limits:
    """Axis limits: the bulk's range (:func:`bulk`) plus ``margin`` of its span on each side.

    Parameters
    ----------
    values : array-like, shape (n,)
    references : array-like, shape (k,)
        Always inside the limits.
    margin : float
        Share of the span added below and above; a span of 0 gets a tenth of the value's magnitude (or 1e-3).

    Returns
    -------
    Limits
        (0, 1) when there is nothing to show.
    """
    found = bulk(values, references, fence)
    if found is None:
        return Limits(0.0, 1.0)
    low, high = found
    span = high - low
    pad = margin * span if span > 0 else max(0.1 * abs(low), 1e-3)
    return Limits(low - pad, high + pad)


def outside(names, values, limits: Limits, at=None) -> list[Outside]:
    """The finite points outside ``limits``, in the order given.

    Parameters
    ----------
    names : sequence of str, shape (n,)
    values : array-like, shape (n,)
    at : sequence of str, shape (n,), optional
        Where each point is in its figure (``epoch 3``).
    """
    at = [""] * len(names) if at is None else list(at)
    return [Outside(str(n), float(v), a) for n, v, a in zip(names, values, at)
            if math.isfinite(float(v)) and not limits.contains(float(v))]


def _value(v: float) -> str:
    return f"{v:.3g}"


def outside_text(points: list[Outside], limits: Limits | None, what: str = "point", unit: str = "") -> str:
    """One sentence counting and naming the points drawn at the edge; empty when there is none.

    Points of one name are named once, with where they lie (``dc679fd8 at -30 (epochs 3-6)``); past
    :data:`NAMED` names, the rest are counted. ``limits`` None: the points of several axes, counted together.
    ``unit`` follows every value (``" %"``).
    """
    if not points:
        return ""
    if limits is None:
        sides = [_count(len(points), what) + " outside their axes"]
    else:
        sides = [f"{_count(len(group), what)} {side} {_value(bound)}{unit}" for side, group, bound in (
            ("below", [p for p in points if p.value < limits.low], limits.low),
            ("above", [p for p in points if p.value > limits.high], limits.high)) if group]
    named = []
    for name, mine in groupby(sorted(points, key=lambda p: p.name), key=lambda p: p.name):
        mine = list(mine)
        values = sorted({_value(p.value) for p in mine}, key=float)
        where = [p.at for p in mine if p.at]
        text = f"{name} at {values[0] if len(values) == 1 else values[0] + ' to ' + values[-1]}{unit}"
        if where:
            text += f" ({_span(where)})"
        named.append(text)
    shown = "; ".join(named[:NAMED]) + (f"; and {len(named) - NAMED} more" if len(named) > NAMED else "")
    return f"Drawn at the axis edge (triangles): {' and '.join(sides)}: {shown}."


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n > 1 else ''}"


def _span(where: list[str]) -> str:
    """``epoch 3, epoch 4, epoch 5`` -> ``epochs 3-5``; anything else joined as it is."""
    words = [w.rsplit(" ", 1) for w in where]
    if all(len(w) == 2 and w[0] == words[0][0] and w[1].isdigit() for w in words):
        numbers = sorted(int(w[1]) for w in words)
        if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 1:
            return f"{words[0][0]}s {numbers[0]}-{numbers[-1]}"
    return ", ".join(where)
