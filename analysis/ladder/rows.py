"""Table 1's rows, in order, each with its statistics (:mod:`analysis.ladder.stats`).

The rows are the rungs in the order given. Right after a rung whose fit a seed
changes (a network) comes its seeds' ensemble (their validation predictions
averaged); right after a study's last row comes an :class:`~analysis.ladder.rungs.Ensemble`
of that study. Every row is scored on the same resampled validation objects, so
any two rows have a paired difference (:func:`compare_rows`). Each model row carries
its difference to the model row above it (ensemble rows skipped: a model is
compared with a model); each ensemble row carries its gain over the mean of its
single models.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analysis.ladder.rungs import Ensemble, Run, Rung, ValData
from analysis.ladder.stats import (CEILING_FLOOR, RESAMPLES, Difference, RunScores, ceiled_sites, difference,
                                   ensemble_prediction, interval, mean_sd, object_resamples, resampled_ev, score_run,
                                   seed_mean_ev)

log = logging.getLogger(__name__)

MODEL = "model"
SEED_ENSEMBLE = "seed ensemble"
ENSEMBLE = "ensemble"
# metrics.json's EV and the one recomputed here differ by float rounding alone when both score the same images.
EV_TOLERANCE = 1e-4


@dataclass
class Row:
    """One row of Table 1.

    Attributes
    ----------
    group, label, study : str
        Table 1's group heading, the row's label, the study it came from.
    kind : str
        :data:`MODEL` (a rung), :data:`SEED_ENSEMBLE` (a rung's seeds averaged) or :data:`ENSEMBLE` (an
        :class:`~analysis.ladder.rungs.Ensemble`).
    seeds : list of int
        The seeds of the runs the row averages (a model's EV) or pools (an ensemble's prediction).
    ev, ev_sd : float
        A model: the mean and SD over seeds of the runs' EVs (SD NaN for one seed). An ensemble: the EV of the
        averaged prediction, SD NaN.
    ev_per_seed : list of float
    r, r_sd, ceiled, ceiled_sd : float
        The same for Corr (mean r over sites) and the ceiled EV (NaN without a ceiling).
    interval : (float, float)
        95 % interval of ``ev`` over resampled validation objects (:func:`~analysis.ladder.stats.interval`).
    samples : array, shape (resamples,)
        ``ev`` on each resample (the same resamples for every row).
    ev_per_site, r_per_site : array, shape (n_sites,)
        Per site, the mean over the row's seeds (an ensemble: of its one prediction).
    predictions : list of arrays, shape (n_val, n_sites)
        What the row scores: each seed's prediction (a model), or the one averaged prediction (an ensemble).
    above : Difference or None
        A model: its EV minus the model row above it (None for the first).
    above_label : str
        That row's label.
    gain : Difference or None
        An ensemble: its EV minus the mean EV of its members, on the same resamples.
    trial_id, config, source : str
        Where the row came from: the search trial, the config file, ``re-check`` or ``search``; for an
        :class:`Ensemble`, the members' folders' common parent.
    rung : Rung or None
        The rung (a model or its seeds' ensemble).
    runs : list of Run
        The runs behind the row.
    """

    group: str
    label: str
    study: str
    kind: str
    seeds: list
    ev: float
    ev_sd: float
    ev_per_seed: list
    r: float
    r_sd: float
    ceiled: float
    ceiled_sd: float
    interval: tuple
    samples: np.ndarray
    ev_per_site: np.ndarray
    r_per_site: np.ndarray
    predictions: list
    trial_id: str = ""
    config: str = ""
    source: str = ""
    rung: Rung | None = None
    runs: list = field(default_factory=list)
    above: Difference | None = None
    above_label: str = ""
    gain: Difference | None = None

    @property
    def name(self) -> str:
        """The row's name across the table: its study and label (a label that starts with its study is its name)."""
        return self.label if self.label.startswith(f"{self.study}:") else f"{self.study}: {self.label}"

    @property
    def is_model(self) -> bool:
        return self.kind == MODEL


def _check(run: Run, val: ValData, what: str) -> None:
    """Refuse a run scored on other images; warn when its own EV disagrees with the one scored here."""
    shape = np.shape(run.pred_val)
    if shape != val.y.shape:
        raise ValueError(f"{what}, seed {run.seed}: predictions of shape {shape}, the validation set is "
                         f"{val.y.shape} ({run.folder})")
    fingerprint = (run.metrics or {}).get("data_fingerprint")
    if fingerprint and val.fingerprint and fingerprint != val.fingerprint:
        raise ValueError(f"{what}, seed {run.seed}: trained on data {fingerprint}, the ladder's validation set is "
                         f"{val.fingerprint} ({run.folder})")


def _scored(runs: list[Run], val: ValData, what: str, floor: float) -> list[RunScores]:
    scores = []
    for run in runs:
        _check(run, val, what)
        s = score_run(val.y, run.pred_val, val.ceiling, floor)
        own = (run.metrics or {}).get("ev")
        if isinstance(own, (int, float)) and abs(own - s.ev) > EV_TOLERANCE:
            log.warning("%s, seed %d: metrics.json says EV %.4f, its predictions score %.4f on the ladder's "
                        "validation set (%s)", what, run.seed, own, s.ev, run.folder)
        scores.append(s)
    return scores


def _model_row(rung: Rung, val: ValData, weights: np.ndarray, floor: float) -> Row:
    if not rung.runs:
        raise ValueError(f"rung {rung.study}: {rung.label} has no run")
    what = f"rung {rung.study}: {rung.label}"
    scores = _scored(rung.runs, val, what, floor)
    samples = seed_mean_ev(val.y, [run.pred_val for run in rung.runs], val.objects, weights)
    ev, ev_sd = mean_sd([s.ev for s in scores])
    r, r_sd = mean_sd([s.r for s in scores])
    ceiled, ceiled_sd = mean_sd([s.ceiled for s in scores])
    return Row(rung.group, rung.label, rung.study, MODEL, [run.seed for run in rung.runs], ev, ev_sd,
               [s.ev for s in scores], r, r_sd, ceiled, ceiled_sd, interval(ev, samples), samples,
               np.mean([s.ev_per_site for s in scores], axis=0), np.mean([s.r_per_site for s in scores], axis=0),
               [run.pred_val for run in rung.runs], rung.trial_id, str(rung.config_path), rung.source, rung,
               list(rung.runs))


def _ensemble_row(group: str, label: str, study: str, members: list[Run], val: ValData, weights: np.ndarray,
                  floor: float, single: np.ndarray, single_ev: float, rung: Rung | None = None) -> Row:
    """An ensemble's row: its averaged prediction scored, and its gain over ``single_ev`` (the mean EV of its
    members; ``single``: the same on each resample)."""
    pred = ensemble_prediction([m.pred_val for m in members])
    s = score_run(val.y, pred, val.ceiling, floor)
    samples = resampled_ev(val.y, pred, val.objects, weights)
    if rung is not None:
        where = (rung.trial_id, str(rung.config_path), rung.source)
    else:
        where = ("", str(common_folder([Path(m.folder) for m in members]) or ""), f"{len(members)} runs")
    row = Row(group, label, study, SEED_ENSEMBLE if rung is not None else ENSEMBLE, [m.seed for m in members], s.ev,
              math.nan, [], s.r, math.nan, s.ceiled, math.nan, interval(s.ev, samples), samples, s.ev_per_site,
              s.r_per_site, [pred], *where, rung=rung, runs=list(members))
    row.gain = difference(s.ev, single_ev, samples, single)
    return row


def common_folder(paths: list[Path]) -> Path | None:
    """The deepest folder holding every path (a run's folder, a config file); None when there is none but the root,
    or the paths mix absolute and relative ones."""
    try:
        common = Path(os.path.commonpath([str(p) for p in paths])) if paths else None
    except ValueError:
        return None
    return common if common is not None and len(common.parts) > 1 else None


def build_rows(rungs: list[Rung], val: ValData, ensembles: list[Ensemble] = (), resamples: int = RESAMPLES,
               seed: int = 0, floor: float = CEILING_FLOOR) -> list[Row]:
    """Table 1's rows with their statistics, in the table's order.

    Parameters
    ----------
    rungs : list of Rung
        In the table's order (grouped as the table is).
    val : ValData
        The validation set every run's ``pred_val`` (shape ``val.y.shape``) predicts.
    ensembles : list of Ensemble
        Each follows the last row of its study (else the table's end, in group ``ensembles``).
    resamples, seed : int
        The bootstrap over validation objects, drawn once for every row.
    floor : float
        Sites whose ceiling is at most this enter no ceiled EV.

    Returns
    -------
    list of Row

    Raises
    ------
    ValueError
        A rung without runs, or a run whose predictions are not of the validation set's shape or whose
        ``metrics.json`` names another data set.
    """
    weights = object_resamples(val.objects, resamples, seed)
    rows: list[Row] = []
    for rung in rungs:
        row = _model_row(rung, val, weights, floor)
        rows.append(row)
        if not rung.deterministic and len(rung.runs) > 1:
            rows.append(_ensemble_row(rung.group, f"{rung.label}, ensemble of {len(rung.runs)} seeds", rung.study,
                                      rung.runs, val, weights, floor, row.samples, row.ev, rung))
    for ensemble in ensembles:
        if not ensemble.members:
            raise ValueError(f"ensemble {ensemble.study}: {ensemble.label} has no member")
        what = f"ensemble {ensemble.study}: {ensemble.label}"
        scores = _scored(ensemble.members, val, what, floor)
        single = seed_mean_ev(val.y, [m.pred_val for m in ensemble.members], val.objects, weights)
        at = max((i for i, r in enumerate(rows) if r.study == ensemble.study), default=None)
        group = rows[at].group if at is not None else "ensembles"
        row = _ensemble_row(group, ensemble.label, ensemble.study, ensemble.members, val, weights, floor, single,
                            float(np.mean([s.ev for s in scores])))
        rows.insert(len(rows) if at is None else at + 1, row)
    previous = None
    for row in rows:
        if row.is_model:
            if previous is not None:
                row.above, row.above_label = compare_rows(row, previous), previous.label
            previous = row
    return rows


def compare_rows(a: Row, b: Row) -> Difference:
    """``a``'s EV minus ``b``'s, with the paired interval over the same resampled objects.

    Parameters
    ----------
    a, b : Row
        Rows of one :func:`build_rows` call (their ``samples`` share the resamples).

    Returns
    -------
    Difference
    """
    return difference(a.ev, b.ev, a.samples, b.samples)


def best_row(rows: list[Row], kinds: tuple = (MODEL,)) -> Row | None:
    """The row of highest EV among those of ``kinds`` (default: models, no ensemble); None when there is none."""
    found = [r for r in rows if r.kind in kinds and np.isfinite(r.ev)]
    return max(found, key=lambda r: r.ev) if found else None


def best_of_groups(rows: list[Row], kinds: tuple = (MODEL,)) -> list[Row]:
    """The best row of each group (among ``kinds``), in the groups' order."""
    groups = list(dict.fromkeys(r.group for r in rows))
    found = [best_row([r for r in rows if r.group == g], kinds) for g in groups]
    return [r for r in found if r is not None]


def ceiling_counts(val: ValData, floor: float = CEILING_FLOOR) -> tuple[int, int]:
    """(sites in the ceiled EV, sites left out), from the validation set's ceiling; (0, 0) without one."""
    if val.ceiling is None:
        return 0, 0
    kept = int(ceiled_sites(val.ceiling, floor).sum())
    return kept, len(val.ceiling) - kept
