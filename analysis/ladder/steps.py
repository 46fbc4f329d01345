"""The report's ordering of the ladder, step by step, each step with its paired interval.

The report's claim, bottom to top: a linear map of the pixels < the best layer of a
network with random weights < a small CNN trained from scratch < the best layer of an
ImageNet network < a fine-tuned network. Each level here is the best model row of a
space's group of Table 1 (where given, of one value of its ladder axes); a step is a
level's EV minus the level below's, paired over the same resampled validation objects
(:func:`analysis.ladder.rows.compare_rows`). A level the ladder has no row for is
skipped, and the step goes to the next level that has one.
"""

from __future__ import annotations

import csv
import math
from itertools import pairwise
from dataclasses import dataclass, field
from pathlib import Path

from analysis.ladder.rows import MODEL, Row, best_row, compare_rows
from analysis.ladder.stats import Difference
from analysis.ladder.table import interval_text, pct
from search_spaces import ladder_group

STEPS_CSV = "steps.csv"
STEPS_COLUMNS = ("lower level", "lower row", "lower EV", "upper level", "upper row", "upper EV", "difference",
                 "difference 95% low", "difference 95% high", "verdict")
# What a step's interval says of the report's order.
HOLDS, REVERSED, UNRESOLVED = "holds", "reversed", "not resolved"


@dataclass(frozen=True)
class Level:
    """One level of the report's ordering: the best model row of ``space``'s group, among those whose ladder axes
    take the values in ``axes``."""

    name: str
    space: str
    axes: dict = field(default_factory=dict)

    def rows(self, rows: list[Row]) -> list[Row]:
        group = ladder_group(self.space)
        return [r for r in rows if r.kind == MODEL and r.group == group and r.rung is not None
                and all(r.rung.axes.get(k) == v for k, v in self.axes.items())]


REPORT_ORDER = (
    Level("pixels", "ridge_pixels"),
    Level("best random-weights layer", "layer_sweep", {"weights": "random"}),
    Level("shallow CNN", "shallow_cnn"),
    Level("best ImageNet layer", "layer_sweep", {"weights": "imagenet"}),
    Level("fine-tuned", "vgg_depth"),
)


@dataclass(frozen=True)
class Step:
    """``upper``'s EV minus ``lower``'s (the report expects it above 0)."""

    lower: Level
    lower_row: Row
    upper: Level
    upper_row: Row
    difference: Difference

    @property
    def verdict(self) -> str:
        """:data:`HOLDS` (the interval is above 0), :data:`REVERSED` (below 0) or :data:`UNRESOLVED`."""
        if not self.difference.excludes_zero:
            return UNRESOLVED
        return HOLDS if self.difference.value > 0 else REVERSED


def ladder_steps(rows: list[Row], order: tuple[Level, ...] = REPORT_ORDER) -> list[Step]:
    """The steps between consecutive levels of ``order`` that the ladder has rows for.

    Parameters
    ----------
    rows : list of Row
        Table 1's rows, from one :func:`~analysis.ladder.rows.build_rows` call (shared resamples).
    order : tuple of Level
        Bottom to top.

    Returns
    -------
    list of Step
        One fewer than the levels found (none with fewer than two).
    """
    found = [(level, best_row(level.rows(rows))) for level in order]
    found = [(level, row) for level, row in found if row is not None and math.isfinite(row.ev)]
    return [Step(low, low_row, up, up_row, compare_rows(up_row, low_row))
            for (low, low_row), (up, up_row) in pairwise(found)]


def step_lines(steps: list[Step]) -> list[str]:
    """The steps for the terminal and the page, one line each:
    ``pixels (7.92) < shallow CNN (12.31): +4.39 [2.81, 5.97], holds``."""
    return [f"{s.lower.name} ({s.lower_row.label}, {pct(s.lower_row.ev)}) < {s.upper.name} ({s.upper_row.label}, "
            f"{pct(s.upper_row.ev)}): {pct(s.difference.value, sign=True)} "
            f"{interval_text(s.difference.low, s.difference.high)}, {s.verdict}" for s in steps]


def write_steps(steps: list[Step], path: Path) -> Path:
    """``steps.csv``: one line per step, EVs and differences as fractions at full precision."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(STEPS_COLUMNS)
        for s in steps:
            writer.writerow([s.lower.name, s.lower_row.name, s.lower_row.ev, s.upper.name, s.upper_row.name,
                             s.upper_row.ev, s.difference.value, s.difference.low, s.difference.high, s.verdict])
    return Path(path)
