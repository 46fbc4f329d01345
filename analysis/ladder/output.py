"""The ladder's outputs in one call: Table 1's rows, the tables, the per-site table, the figures and the page."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from analysis.ladder.figures import LAYERS_PNG, RDMS_PNG, SITES_PNG, plot_layers, plot_rdms, plot_sites
from analysis.ladder.page import SITE_RESPONSES, write_page
from analysis.ladder.rows import Row, build_rows
from analysis.ladder.rungs import Ensemble, Rung, ValData
from analysis.ladder.sites import SITES_CSV, write_sites
from analysis.ladder.stats import CEILING_FLOOR, RESAMPLES
from analysis.ladder.steps import STEPS_CSV, ladder_steps, write_steps
from analysis.ladder.table import write_tables
from analysis.style import Drawn

log = logging.getLogger(__name__)


@dataclass
class Written:
    """What :func:`write_ladder` wrote.

    Attributes
    ----------
    rows : list of Row
        Table 1's rows, with their statistics (for ``format_table`` and MLflow).
    steps : list of Step
        The report's ordering, step by step (:mod:`analysis.ladder.steps`).
    figures : list of Drawn
        Figure 1 (absent without a layer sweep), 2A, 2B.
    files : list of Path
        Every file written into the folder: tables, ``sites.csv``, figures, the page (and Figure 3's copy).
    page : Path
        ``index.html``.
    """

    rows: list
    steps: list
    figures: list
    page: Path
    files: list = field(default_factory=list)


def draw_figures(rows: list[Row], val: ValData, out: Path) -> list[Drawn]:
    """``layers.png`` (where the ladder has a layer x weights sweep), ``sites.png`` and ``rdms.png`` in ``out``."""
    out = Path(out)
    drawn = [plot_layers(rows, val, out / LAYERS_PNG), plot_sites(rows, val, out / SITES_PNG),
             plot_rdms(rows, val, out / RDMS_PNG)]
    return [d for d in drawn if d is not None]


def write_ladder(rungs: list[Rung], val: ValData, out: Path, ensembles: list[Ensemble] = (),
                 resamples: int = RESAMPLES, seed: int = 0, floor: float = CEILING_FLOOR) -> Written:
    """Score every rung and ensemble on ``val`` and write the ladder's folder.

    Parameters
    ----------
    rungs : list of Rung
        In Table 1's order.
    val : ValData
    out : Path
        Made if missing; receives ``table.md``, ``table.csv``, ``sites.csv``, ``steps.csv``, ``layers.png``, ``sites.png``,
        ``rdms.png``, ``site_responses.png`` (the best model's, where its run drew one) and ``index.html``.
    ensembles : list of Ensemble
    resamples, seed : int
        The bootstrap over validation objects.
    floor : float
        The ceiled EV's floor on a site's ceiling.

    Returns
    -------
    Written
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = build_rows(rungs, val, ensembles, resamples, seed, floor)
    steps = ladder_steps(rows)
    files = list(write_tables(rows, val, out)) + [write_sites(rows, val, out / SITES_CSV, floor),
                                                   write_steps(steps, out / STEPS_CSV)]
    figures = draw_figures(rows, val, out)
    copied = out / SITE_RESPONSES
    copied.unlink(missing_ok=True)  # the page copies the best model's, where its run drew one
    page = write_page(rows, figures, val, out, steps)
    files += [d.path for d in figures] + ([copied] if copied.is_file() else []) + [page]
    return Written(rows, steps, figures, page, files)
