"""Per site, across the ladder: ``sites.csv`` and a row's best and worst sites.

A model row's per-site scores are the mean over its seeds of each seed's per-site
EV and r (an ensemble row's: those of its averaged prediction). EV / ceiling is
left empty where the site's ceiling is below the ceiled EV's floor, as the
ceiled EV leaves those sites out (:func:`trainables.core.metrics.ceiled_per_site`, as
a final training's ``sites.csv``).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.ladder.rows import Row
from analysis.ladder.rungs import ValData
from analysis.ladder.stats import CEILING_FLOOR
from trainables.core.metrics import ceiled_per_site as ceiled_of_sites

log = logging.getLogger(__name__)

SITES_CSV = "sites.csv"
SITE = "site"
CEILING = "noise ceiling EV"


@dataclass(frozen=True)
class SiteScore:
    """One site's scores under one row.

    Attributes
    ----------
    site : int
        Its column in the responses.
    ev, r : float
        Seed-mean EV and Pearson r.
    ceiling : float
        Its split-half EV ceiling (NaN without one).
    ceiled : float
        EV / ceiling (NaN where the ceiling is below the floor, or absent).
    """

    site: int
    ev: float
    r: float
    ceiling: float
    ceiled: float


def ceiled_per_site(ev_per_site: np.ndarray, ceiling: np.ndarray | None, floor: float = CEILING_FLOOR) -> np.ndarray:
    """EV / ceiling per site, NaN where the ceiling is below ``floor`` or absent.

    Parameters
    ----------
    ev_per_site, ceiling : array, shape (n_sites,)

    Returns
    -------
    array, shape (n_sites,)
    """
    if ceiling is None:
        return np.full(np.shape(ev_per_site), np.nan)
    return ceiled_of_sites(ev_per_site, ceiling, floor)


def column_names(rows: list[Row]) -> list[str]:
    """Each row's name in the per-site table (its study and label), made unique with a count where two agree."""
    names, seen = [], {}
    for row in rows:
        seen[row.name] = seen.get(row.name, 0) + 1
        names.append(row.name if seen[row.name] == 1 else f"{row.name} ({seen[row.name]})")
    return names


def site_table(rows: list[Row], val: ValData, floor: float = CEILING_FLOOR) -> tuple[list[str], np.ndarray]:
    """The per-site table across rows.

    Returns
    -------
    columns : list of str
        ``site``, ``noise ceiling EV``, then per row ``EV <row>``, ``r <row>``, ``EV/ceiling <row>``.
    table : array, shape (n_sites, 2 + 3 * n_rows)
        NaN where a value does not exist (no ceiling; a site under the floor).
    """
    n = val.y.shape[1]
    ceiling = np.full(n, np.nan) if val.ceiling is None else np.asarray(val.ceiling, dtype=float)
    columns, values = [SITE, CEILING], [np.arange(n, dtype=float), ceiling]
    for name, row in zip(column_names(rows), rows):
        columns += [f"EV {name}", f"r {name}", f"EV/ceiling {name}"]
        values += [row.ev_per_site, row.r_per_site, ceiled_per_site(row.ev_per_site, val.ceiling, floor)]
    return columns, np.column_stack(values)


def write_sites(rows: list[Row], val: ValData, path: Path, floor: float = CEILING_FLOOR) -> Path:
    """``sites.csv``: one line per site, the columns of :func:`site_table` (empty where NaN)."""
    columns, table = site_table(rows, val, floor)
    with Path(path).open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for line in table:
            writer.writerow([int(line[0])] + ["" if not math.isfinite(v) else f"{v:.6g}" for v in line[1:]])
    log.info("wrote %s", path)
    return Path(path)


def extreme_sites(row: Row, val: ValData, n: int = 5, floor: float = CEILING_FLOOR
                  ) -> tuple[list[SiteScore], list[SiteScore]]:
    """A row's ``n`` best and ``n`` worst sites by EV.

    Returns
    -------
    (best, worst) : lists of SiteScore
        Best first; worst from the lowest EV up.
    """
    ceiling = np.full(len(row.ev_per_site), np.nan) if val.ceiling is None else np.asarray(val.ceiling, dtype=float)
    ceiled = ceiled_per_site(row.ev_per_site, val.ceiling, floor)
    order = np.argsort(row.ev_per_site, kind="stable")

    def score(i: int) -> SiteScore:
        return SiteScore(int(i), float(row.ev_per_site[i]), float(row.r_per_site[i]), float(ceiling[i]),
                         float(ceiled[i]))

    return [score(i) for i in order[::-1][:n]], [score(i) for i in order[:n]]
