"""Figures of a search: optimisation history, learning curves, importance, parallel coordinates, isolation.

Each function takes the trials of a search (:class:`trainables.study.records.trials.TrialRecord`),
writes one PNG with matplotlib's Agg backend in the style of :mod:`analysis.style`
(limits from the bulk of the trials and the references, a trial outside drawn at
the edge and named) and returns a :class:`analysis.style.Drawn`: the figure, its
path and its caption. ``references`` (name -> inner-validation EV, the plan's ideal
observers) are drawn as labelled lines on every EV axis.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from optuna.distributions import CategoricalDistribution  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from analysis.limits import Limits, outside, outside_text, robust_limits  # noqa: E402
from analysis.style import (EDGE_NOTE, EV_LABEL, Drawn, colour_scale, edge_line, integer_ticks,  # noqa: E402
                            mark_outside, reference_lines, save, set_limits)
from trainables.study.records.trials import TrialRecord  # noqa: E402
from trainables.study.result import OBJECTIVE as METRIC  # noqa: E402
from trainables.study.result import epoch_of  # noqa: E402

STATUS_COLORS = {"completed": "tab:blue", "pruned": "tab:gray", "failed": "tab:red", "running": "tab:orange"}


def _values(references: dict | None) -> list[float]:
    return list((references or {}).values())


def trial_times(trial: TrialRecord) -> tuple[float, float]:
    """(start, end) of a trial in unix seconds, from its reported results."""
    first, last = trial.results[0], trial.results[-1]
    start = first["timestamp"] - first.get("time_this_iter_s", 0.0)
    return start, last["timestamp"]


def plot_history(trials: list[TrialRecord], path: Path, references: dict | None = None) -> Drawn:
    """Each trial's score and the best-so-far (completed trials), vs. trial order and vs. wall time.

    The two panels share one y axis, limited to the bulk of the trials' scores and the references.
    """
    scored = sorted((t for t in trials if t.results and t.best(METRIC) is not None), key=lambda t: trial_times(t)[0])
    t0 = min(trial_times(t)[0] for t in scored)
    scores = np.array([t.best(METRIC) for t in scored])
    limits = robust_limits(scores, _values(references))
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4), sharey=True)
    for ax, xs, label in (
        (axes[0], np.arange(1, len(scored) + 1), "trial (in order of start)"),
        (axes[1], np.array([(trial_times(t)[1] - t0) / 60 for t in scored]), "wall time at trial end (min)"),
    ):
        inside = np.array([limits.contains(s) for s in scores])
        for status, color in STATUS_COLORS.items():
            idx = [i for i, t in enumerate(scored) if t.status == status and inside[i]]
            if idx:
                ax.scatter(xs[idx], scores[idx], c=color, s=22, label=status, zorder=3)
        mark_outside(ax, xs, scores, limits, color=[STATUS_COLORS.get(t.status, "k") for t in scored])
        order = np.argsort(xs)
        best, line = -np.inf, []
        for i in order:
            if scored[i].status == "completed":
                best = max(best, scores[i])
            line.append(best if np.isfinite(best) else np.nan)
        ax.step(xs[order], line, where="post", color="k", lw=1.2, label="best so far (completed)")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        set_limits(ax, limits)
        reference_lines(ax, references, label=ax is axes[1])
    axes[0].set_ylabel(f"best {EV_LABEL}")
    integer_ticks(axes[0])
    axes[1].legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.suptitle("Optimisation history")
    out = outside([t.trial_id for t in scored], scores, limits)
    return save(fig, path, "Each trial's best inner-validation EV, by start (left) and by wall time (right); the "
                "black step is the best completed trial so far: where it stays flat, later trials found nothing "
                "better.", out, limits)


def plot_learning_curves(trials: list[TrialRecord], path: Path, top: int = 5,
                         references: dict | None = None) -> Drawn:
    """Inner-validation EV per epoch; the top completed trials in colour, the others grey, x where the scheduler
    stopped a trial.

    A curve that leaves the axis (a diverged trial) is drawn to the edge, its points outside as triangles there.
    """
    ranked = sorted((t for t in trials if t.status == "completed" and t.results), key=lambda t: -t.best(METRIC))
    highlight = {t.trial_id for t in ranked[:top]}

    def curve(t):
        return (np.array([epoch_of(r) or i + 1 for i, r in enumerate(t.results)], dtype=float),
                np.array([np.nan if r.get("inner_ev") is None else r["inner_ev"] for r in t.results], dtype=float))

    curves = {t.trial_id: curve(t) for t in trials if t.results}
    limits = robust_limits(np.concatenate([ev for _, ev in curves.values()]) if curves else [],
                           _values(references))
    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    out = []
    for t in trials:
        if not t.results or t.trial_id in highlight:
            continue
        epochs, ev = curves[t.trial_id]
        edge_line(ax, epochs, ev, limits, color="0.75", lw=0.8, zorder=1)
        mark_outside(ax, epochs, ev, limits, color="0.6", size=30)
        if t.status == "pruned" and limits.contains(ev[-1]):
            ax.scatter(epochs[-1], ev[-1], marker="x", color="0.45", s=25, zorder=2)
        out += outside([t.trial_id] * len(ev), ev, limits, [f"epoch {int(e)}" for e in epochs])
    for t in ranked[:top]:
        epochs, ev = curves[t.trial_id]
        line = edge_line(ax, epochs, ev, limits, lw=1.6, marker="o", ms=3,
                         label=f"{t.trial_id} (best {t.best(METRIC):.3f})", zorder=3)
        mark_outside(ax, epochs, ev, limits, color=line.get_color())
        out += outside([t.trial_id] * len(ev), ev, limits, [f"epoch {int(e)}" for e in epochs])
    ax.scatter([], [], marker="x", color="0.45", label="stopped early (scheduler)")
    if out:
        ax.scatter([], [], marker="v", color="0.6", edgecolors="k", linewidths=0.6, label=EDGE_NOTE)
    set_limits(ax, limits)
    reference_lines(ax, references)
    ax.set_xlabel("epoch")
    ax.set_ylabel(EV_LABEL)
    integer_ticks(ax)
    ax.set_title(f"Learning curves: top {min(top, len(ranked))} completed trials")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(alpha=0.3)
    return save(fig, path, f"Inner-validation EV per epoch: the {min(top, len(ranked))} best completed trials in "
                "colour, the others grey, x where the scheduler stopped a trial; a curve still rising at its last "
                "epoch wanted more epochs.", out, limits)


def plot_importance(importances: dict[str, float], path: Path) -> Drawn:
    """Horizontal bars of hyperparameter importance (PED-ANOVA)."""
    names = sorted(importances, key=importances.get)
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.2))
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (PED-ANOVA, normalised)")
    ax.set_title("Which hyperparameters mattered")
    return save(fig, path, "How far each hyperparameter's values among the best trials differ from its values "
                "overall (PED-ANOVA): long bars mattered, short ones could be fixed.")


def _axis_values(values: list, distribution) -> tuple[np.ndarray, list | None]:
    """Map a parameter's values to [0, 1] for parallel coordinates; categorical labels when categorical."""
    if isinstance(distribution, CategoricalDistribution):
        choices = list(distribution.choices)
        return np.array([choices.index(v) / max(len(choices) - 1, 1) if v in choices else np.nan
                         for v in values]), [str(c) for c in choices]
    low, high = distribution.low, distribution.high
    v = np.array([np.nan if x is None else float(x) for x in values])
    if getattr(distribution, "log", False):
        v, low, high = np.log10(v), math.log10(low), math.log10(high)
    return (v - low) / ((high - low) or 1.0), None


def plot_parallel(study_trials, path: Path, names: dict[int, str] | None = None,
                  references: dict | None = None) -> Drawn:
    """Parallel coordinates of the sampled hyperparameters of completed trials, coloured by score.

    Parameters
    ----------
    study_trials : list of optuna.trial.FrozenTrial
        Only COMPLETE ones are drawn (Optuna gives a PRUNED trial the last intermediate value it reported, an early
        score that is not comparable).
    names : dict, optional
        Optuna trial number -> the trial's id, for the caption; when given, only these trials are drawn (the
        search's: a re-check run repeats a drawn trial's values and would hide it).
    references : dict, optional
        Marked on the colour bar.

    The colour scale spans the bulk of the scores (:func:`analysis.style.colour_scale`): a diverged trial takes the
    scale's end colour and is named in the caption, instead of giving every other trial one colour.
    """
    trials = [t for t in study_trials if t.state == TrialState.COMPLETE and t.value is not None
              and (names is None or t.number in names)]
    params = sorted({p for t in trials for p in t.params})
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(params) + 2), 4.5))
    read = ("Each line is a completed trial's sampled values, coloured by its inner-validation EV (yellow: best; a "
            "gap: a parameter the trial did not sample): where the yellow lines bunch on an axis, that "
            "hyperparameter's good values are.")
    if not trials or not params:
        ax.text(0.5, 0.5, "no completed trial", ha="center")
        return save(fig, path, read)
    values = np.array([t.value for t in trials])
    norm, extend = colour_scale(values, _values(references))
    cmap = plt.get_cmap("viridis")
    columns = []
    for name in params:
        dist = next(t.distributions[name] for t in trials if name in t.distributions)
        col, labels = _axis_values([t.params.get(name) for t in trials], dist)
        columns.append(col)
        x = len(columns) - 1
        if labels:
            for i, lab in enumerate(labels):
                ax.text(x + 0.03, i / max(len(labels) - 1, 1), lab, fontsize=7, va="center")
        else:
            lo, hi = dist.low, dist.high
            ax.text(x + 0.03, 0, f"{lo:.3g}", fontsize=7, va="center")
            ax.text(x + 0.03, 1, f"{hi:.3g}", fontsize=7, va="center")
    grid = np.vstack(columns).T  # (n_trials, n_params); NaN where a conditional parameter is absent
    for row, value in sorted(zip(grid, values), key=lambda rv: rv[1]):
        ax.plot(np.arange(len(params)), row, color=cmap(norm(value)), lw=1.2, alpha=0.85, marker="o", ms=3)
    for x in range(len(params)):
        ax.axvline(x, color="k", lw=0.6)
    ax.set_xticks(range(len(params)), params, rotation=20, fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(params) - 0.5)
    ax.set_ylim(-0.05, 1.05)  # every axis of the plot runs over its whole range, whatever was sampled
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=EV_LABEL, extend=extend)
    for name, value in (references or {}).items():  # the ideal observers on the colour scale: below them, worse
        bar.ax.axhline(value, color="w", lw=1.5)
        bar.ax.text(-0.15, value, name.replace(" ideal observer", ""), transform=bar.ax.get_yaxis_transform(),
                    ha="right", va="center", fontsize=7)
    ax.set_title("Parallel coordinates: completed trials")
    scale = Limits(norm.vmin, norm.vmax)
    out = outside([(names or {}).get(t.number, f"Optuna trial {t.number}") for t in trials], values, scale)
    note = outside_text(out, scale).replace("Drawn at the axis edge (triangles)",
                                            "Coloured as an end of the colour bar (its triangle)")
    return save(fig, path, read, out, note=note)


def isolation_table(trials: list[TrialRecord], param: str, split: str | None = None,
                    order: list | None = None) -> dict:
    """Best completed trial per value of ``param`` (per value of ``split`` when given).

    Returns
    -------
    dict split value -> list of (param value, best EV, trial id), in ``order`` when given.
    """
    groups: dict = {}
    for t in trials:
        if t.status != "completed" or param not in t.config or t.best(METRIC) is None:
            continue
        key = t.config.get(split) if split else "all"
        value = t.config[param]
        best = groups.setdefault(key, {})
        if value not in best or t.best(METRIC) > best[value][0]:
            best[value] = (t.best(METRIC), t.trial_id)
    table = {}
    for key, best in groups.items():
        values = [v for v in (order or sorted(best, key=lambda v: (isinstance(v, str), v))) if v in best]
        table[key] = [(v, best[v][0], best[v][1]) for v in values]
    return table


def recheck_points(rows: list, param: str, split: str | None = None) -> dict:
    """The re-check's mean and standard error per value of ``param`` (per value of ``split``): the best mean where
    several re-checked configs share a value.

    ``rows``: the re-check's table (:class:`trainables.study.recheck.stats.RecheckRow`: ``trial``, ``mean``, ``se``).

    Returns
    -------
    dict split value -> {param value: (mean, SE, trial id)}
    """
    points: dict = {}
    for r in rows:
        config = r.trial.config
        if param not in config or not math.isfinite(r.mean):
            continue
        mine = points.setdefault(config.get(split) if split else "all", {})
        value = config[param]
        if value not in mine or r.mean > mine[value][0]:
            mine[value] = (r.mean, r.se, r.trial.trial_id)
    return points


def plot_isolation(table: dict, param: str, path: Path, split: str | None = None, references: dict | None = None,
                   rechecks: dict | None = None) -> Drawn:
    """Best inner-validation EV per value of the scientific hyperparameter (one line per ``split`` value).

    Parameters
    ----------
    table : dict
        From :func:`isolation_table`.
    rechecks : dict, optional
        From :func:`recheck_points`: drawn beside the search's points as the re-check's mean +- SE.
    references : dict, optional
        The ideal observers, as labelled lines.
    """
    rechecks = rechecks or {}
    fig, ax = plt.subplots(figsize=(9.5, 4.2))
    # Every value drawn: the search's, and the re-check's (a config stopped early can be re-checked when few
    # completed).
    values = list(dict.fromkeys([v for rows in table.values() for v, _, _ in rows]
                                + [v for pts in rechecks.values() for v in pts]))
    categorical = any(isinstance(v, (str, bool)) for v in values)
    labels = values if categorical else []

    def at(v):
        return labels.index(v) if categorical else v

    xs_all = sorted({at(v) for v in values})
    integers = not categorical and all(isinstance(x, (int, np.integer)) for x in xs_all)
    # A rate or a penalty, values decades apart: a log axis, and the re-check's point beside the search's by a ratio.
    log = not categorical and not integers and bool(xs_all) and xs_all[0] > 0 and xs_all[-1] >= 10 * xs_all[0]
    gaps = np.diff(np.log10(xs_all) if log else xs_all)
    shift = 0.12 * (float(gaps.min()) if len(gaps) else 1.0)

    def beside(x):
        return x * 10**shift if log else x + shift
    seen = [ev for rows in table.values() for _, ev, _ in rows]
    seen += [m + s * side for pts in rechecks.values() for m, s, _ in pts.values() if math.isfinite(s)
             for side in (-1, 1)] + [m for pts in rechecks.values() for m, _, _ in pts.values()]
    limits = robust_limits(seen, _values(references))
    out = []
    for key, rows in sorted(table.items(), key=lambda kv: str(kv[0])):
        xs = np.array([at(v) for v, _, _ in rows], dtype=float)
        ev = np.array([e for _, e, _ in rows])
        label = f"{split} = {key}: " if split else ""
        line = edge_line(ax, xs, ev, limits, marker="o", mfc="white", label=f"{label}search, best trial (one seed)")
        mark_outside(ax, xs, ev, limits, color=line.get_color())
        out += outside([tid for _, _, tid in rows], ev, limits)
        mine = rechecks.get(key, {})
        if mine:
            rx = np.array([beside(at(v)) for v in mine], dtype=float)
            means = np.array([m for m, _, _ in mine.values()])
            ses = np.array([0.0 if not math.isfinite(s) else s for _, s, _ in mine.values()])
            ax.errorbar(rx, means, yerr=ses, fmt="s", color=line.get_color(), capsize=4, ms=5, lw=1.3,
                        label=f"{label}re-check, mean ± SE over new seeds")
            mark_outside(ax, rx, means, limits, color=line.get_color())
            out += outside([f"{tid} (re-check)" for _, _, tid in mine.values()], means, limits)
    if categorical:
        ax.set_xticks(range(len(labels)), [str(v) for v in labels], rotation=30)
        ax.set_xlim(-0.5, len(labels) - 0.5)
    elif integers:
        integer_ticks(ax)
        ax.set_xlim(xs_all[0] - 0.5, xs_all[-1] + 0.5)
    elif log:
        ax.set_xscale("log")
    set_limits(ax, limits)
    reference_lines(ax, references)
    ax.set_xlabel(param)
    ax.set_ylabel(f"best {EV_LABEL}")
    ax.set_title(f"Isolation: best completed trial per {param}")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.grid(alpha=0.3)
    if rechecks:
        read = (f"The effect of {param}: the best search trial per value (circles, one seed, selected for being "
                "high) and the re-check's mean ± SE over new seeds (squares); values whose error bars overlap are "
                "not told apart by this study.")
    else:
        read = (f"The effect of {param}: the best completed trial per value, one seed each and no re-check, so no "
                "error bars: a difference smaller than the seed-to-seed spread says nothing.")
    return save(fig, path, read, out, limits)
