"""Figures of a search: optimisation history, learning curves, importance, parallel coordinates, isolation.

Each function takes the trials of a search (:class:`trainables.study.records.trials.TrialRecord`)
and writes one PNG with matplotlib's Agg backend.
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

from trainables.study.records.trials import TrialRecord  # noqa: E402
from trainables.study.result import OBJECTIVE as METRIC  # noqa: E402

STATUS_COLORS = {"completed": "tab:blue", "pruned": "tab:gray", "failed": "tab:red", "running": "tab:orange"}


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def trial_times(trial: TrialRecord) -> tuple[float, float]:
    """(start, end) of a trial in unix seconds, from its reported results."""
    first, last = trial.results[0], trial.results[-1]
    start = first["timestamp"] - first.get("time_this_iter_s", 0.0)
    return start, last["timestamp"]


def plot_history(trials: list[TrialRecord], path: Path) -> Path:
    """Each trial's score and the best-so-far (completed trials), vs. trial order and vs. wall time."""
    scored = sorted((t for t in trials if t.results and t.best(METRIC) is not None), key=lambda t: trial_times(t)[0])
    t0 = min(trial_times(t)[0] for t in scored)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, xs, label in (
        (axes[0], np.arange(1, len(scored) + 1), "trial (in order of start)"),
        (axes[1], np.array([(trial_times(t)[1] - t0) / 60 for t in scored]), "wall time at trial end (min)"),
    ):
        for status, color in STATUS_COLORS.items():
            idx = [i for i, t in enumerate(scored) if t.status == status]
            if idx:
                ax.scatter(xs[idx], [scored[i].best(METRIC) for i in idx], c=color, s=22, label=status, zorder=3)
        order = np.argsort(xs)
        best, line = -np.inf, []
        for i in order:
            if scored[i].status == "completed":
                best = max(best, scored[i].best(METRIC))
            line.append(best if np.isfinite(best) else np.nan)
        ax.step(xs[order], line, where="post", color="k", lw=1.2, label="best so far (completed)")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("inner-validation EV")
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle("Optimisation history")
    return _save(fig, path)


def plot_learning_curves(trials: list[TrialRecord], path: Path, top: int = 5) -> Path:
    """Inner-validation EV per epoch; the top completed trials in colour, the others grey, x where ASHA stopped."""
    ranked = sorted((t for t in trials if t.status == "completed" and t.results), key=lambda t: -t.best(METRIC))
    highlight = {t.trial_id for t in ranked[:top]}
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for t in trials:
        if not t.results or t.trial_id in highlight:
            continue
        epochs = [r["training_iteration"] for r in t.results]
        ax.plot(epochs, [r["inner_ev"] for r in t.results], color="0.75", lw=0.8, zorder=1)
        if t.status == "pruned":
            ax.scatter(epochs[-1], t.results[-1]["inner_ev"], marker="x", color="0.45", s=25, zorder=2)
    for t in ranked[:top]:
        epochs = [r["training_iteration"] for r in t.results]
        ax.plot(epochs, [r["inner_ev"] for r in t.results], lw=1.6, marker="o", ms=3,
                label=f"{t.trial_id} (best {t.best(METRIC):.3f})", zorder=3)
    ax.scatter([], [], marker="x", color="0.45", label="stopped by ASHA")
    ax.set_xlabel("epoch")
    ax.set_ylabel("inner-validation EV")
    ax.set_title(f"Learning curves: top {min(top, len(ranked))} completed trials")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_importance(importances: dict[str, float], path: Path) -> Path:
    """Horizontal bars of hyperparameter importance (PED-ANOVA)."""
    names = sorted(importances, key=importances.get)
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.2))
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    ax.set_xlabel("importance (PED-ANOVA, normalised)")
    ax.set_title("Which hyperparameters mattered")
    return _save(fig, path)


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


def plot_parallel(study_trials, path: Path) -> Path:
    """Parallel coordinates of the sampled hyperparameters of completed trials, coloured by score.

    ``study_trials``: Optuna FrozenTrials; only COMPLETE ones are drawn (Optuna gives a PRUNED
    trial the last intermediate value it reported, an early score that is not comparable).
    """
    trials = [t for t in study_trials if t.state == TrialState.COMPLETE and t.value is not None]
    names = sorted({p for t in trials for p in t.params})
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(names) + 2), 4.5))
    if not trials or not names:
        ax.text(0.5, 0.5, "no completed trial", ha="center")
        return _save(fig, path)
    values = np.array([t.value for t in trials])
    norm = plt.Normalize(values.min(), values.max())
    cmap = plt.get_cmap("viridis")
    columns = []
    for name in names:
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
        ax.plot(np.arange(len(names)), row, color=cmap(norm(value)), lw=1.2, alpha=0.85)
    for x in range(len(names)):
        ax.axvline(x, color="k", lw=0.6)
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(names) - 0.5)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="inner-validation EV")
    ax.set_title("Parallel coordinates (completed trials; gaps: parameter not sampled)")
    return _save(fig, path)


def isolation_table(trials: list[TrialRecord], param: str, split: str | None = None,
                    order: list | None = None) -> dict:
    """Best completed trial per value of ``param`` (per value of ``split`` when given).

    Returns
    -------
    dict split value -> list of (param value, best EV, trial id), in ``order`` when given.
    """
    groups: dict = {}
    for t in trials:
        if t.status != "completed" or param not in t.config:
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


def plot_isolation(table: dict, param: str, path: Path, split: str | None = None) -> Path:
    """Best inner-validation EV per value of the scientific hyperparameter (one line per ``split`` value)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    categorical = any(isinstance(v, str) for rows in table.values() for v, _, _ in rows)
    labels = []
    if categorical:
        for rows in table.values():
            for v, _, _ in rows:
                if v not in labels:
                    labels.append(v)
    for key, rows in sorted(table.items(), key=lambda kv: str(kv[0])):
        xs = [labels.index(v) for v, _, _ in rows] if categorical else [v for v, _, _ in rows]
        ax.plot(xs, [ev for _, ev, _ in rows], marker="o", label=f"{split} = {key}" if split else None)
    if categorical:
        ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_xlabel(param)
    ax.set_ylabel("best inner-validation EV")
    ax.set_title(f"Isolation: best completed trial per {param}")
    if split:
        ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    return _save(fig, path)
