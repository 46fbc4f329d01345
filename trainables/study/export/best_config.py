"""The export of a study: its best configuration, in the format ``trainables.train`` reads, and its trials table.

The exported configuration: when the search ran its top-K re-check
(:mod:`trainables.study.recheck.stats`), the re-checked configuration with the best mean
over its new seeds, with every re-checked configuration's mean +- standard error
and whether #1 and #2 tie; otherwise the best trial among those that reached full
fidelity (completed, not pruned). Read from the files alone (no Ray cluster).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict
from pathlib import Path

from trainables.core.layout import BEST_CONFIG_FILE, RECHECK_KEY, TOP_FILE, TRIALS_FILE, sampled_params
from trainables.fitting.families import config_of
from trainables.study.plan.search_plan import SearchPlan, read_plan
from trainables.study.recheck.stats import RecheckRow, is_tie, recheck_table
from trainables.study.recheck.table import format_table, runs_spent, sampled_text
from trainables.study.records.trials import TrialRecord, load_trials, search_trials, study_folder
from trainables.study.result import OBJECTIVE as METRIC


class NothingToExport(RuntimeError):
    """No trial of the search finished."""


def rank(trials: list[TrialRecord], statuses=("completed",)) -> list[TrialRecord]:
    """The searcher's trials with one of ``statuses``, best (single-seed) inner-validation EV first."""
    scored = [t for t in search_trials(trials) if t.status in statuses and t.best(METRIC) is not None]
    return sorted(scored, key=lambda t: t.best(METRIC), reverse=True)


def rechecked(plan: SearchPlan, trials: list[TrialRecord]) -> list[RecheckRow]:
    """The re-check's table once every config it takes seeds for has had a run (empty when the study ran none, or
    not yet: a time budget can end the first round with some configs run and others not, and a config's selected
    single-seed score is no rival for another's re-check mean)."""
    rows = recheck_table(trials, plan.recheck.top)
    tried = {t.config[RECHECK_KEY] for t in trials if RECHECK_KEY in t.config and t.status != "running"}
    if not rows or math.isnan(rows[0].mean) or any(not r.deterministic and r.trial.trial_id not in tried for r in rows):
        return []
    return rows


def best_config(folder: Path, trials: list[TrialRecord] | None = None) -> dict:
    """The exported config with its provenance: the re-check's best mean, else the best completed trial.

    Raises
    ------
    NothingToExport
        No completed trial.
    """
    plan = read_plan(folder)
    trials = load_trials(folder) if trials is None else trials
    ranked, rows = rank(trials), rechecked(plan, trials)
    if not ranked and not rows:
        raise NothingToExport(f"search '{plan.name}' has no completed trial yet")
    best = rows[0].trial if rows else ranked[0]
    config = exported(plan, folder, best)
    if rows:
        # The search's own score of each config is kept apart: it was selected for being high.
        config["provenance"]["recheck"] = {
            "seeds": sorted({t.config.get("seed") for t in trials if t.config.get(RECHECK_KEY) == best.trial_id}),
            "table": [r.as_dict() for r in rows],
            "tie": len(rows) >= 2 and is_tie(rows[0], rows[1]),
            "runs": runs_spent(rows),
        }
    return config


def exported(plan: SearchPlan, folder: Path, trial: TrialRecord) -> dict:
    """A search trial's config as an export writes it: the config and its ``provenance`` (the study, the trial, its
    score, its sampled values, the data and the tracking store)."""
    config = config_of(trial.config)
    config["provenance"] = {
        "experiment": plan.name,
        "space": plan.space,
        "trial_id": trial.trial_id,
        "metric": METRIC,
        "value": trial.best(METRIC),
        "epochs_reached": trial.epochs,
        "sampled": sampled_params(trial.config),
        "git_commit": plan.git_commit,
        "data": asdict(plan.data),
        "data_fingerprint": plan.data_fingerprint,
        "tracking_uri": plan.tracking_uri(folder),
        "parent_run_id": plan.tracking.parent_run_id,
    }
    return config


def write_trials_table(trials: list[TrialRecord], path: Path) -> Path:
    """One row per trial: id, status, epochs, best inner EV and r, node, seed, the trial a re-check repeats,
    sampled hyperparameters."""
    sampled = sorted({k for t in trials for k in sampled_params(t.config)})
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial_id", "status", "epochs", METRIC, "best_inner_r", "node_id", "seed", "recheck_of", *sampled])
        for t in sorted(trials, key=lambda t: t.trial_id):
            r = t.best("inner_r")
            node = t.results[-1].get("node_id", "") if t.results else ""
            best = t.best(METRIC)
            writer.writerow([t.trial_id, t.status, t.epochs, "" if best is None else f"{best:.6f}",
                             "" if r is None else f"{r:.6f}", node, t.config.get("seed", ""),
                             t.config.get(RECHECK_KEY, ""), *[t.config.get(k, "") for k in sampled]])
    return path


def export(storage: Path, name: str, out: Path | None = None, top: int = 0) -> tuple[Path, dict]:
    """Write ``best_config.json`` and ``trials.csv`` (and the top-K table) for a search."""
    folder = study_folder(storage, name)
    trials = load_trials(folder)
    write_trials_table(trials, folder / TRIALS_FILE)  # written even when no trial completed
    config = best_config(folder, trials)
    out = Path(out) if out else folder / BEST_CONFIG_FILE
    out.write_text(json.dumps(config, indent=2) + "\n")
    if top:
        table = top_table(rechecked(read_plan(folder), trials), trials, top)
        (folder / TOP_FILE.format(k=top)).write_text(json.dumps(table, indent=2) + "\n")
    return out, config


def top_table(rows: list[RecheckRow], trials: list[TrialRecord], top: int) -> list[dict]:
    """The ``top`` best configs: re-checked ones (``rows``) by their mean (with SE and runs), then the rest by search
    score."""
    table = [{"rank": i + 1, "trial_id": r.trial.trial_id, METRIC: r.search_value, "recheck_mean": r.mean,
              "recheck_se": r.se, "recheck_values": r.values, "epochs": r.trial.epochs,
              "config": config_of(r.trial.config)} for i, r in enumerate(rows[:top])]
    rechecked = {r.trial.trial_id for r in rows}
    for t in rank(trials):
        if len(table) >= top:
            break
        if t.trial_id not in rechecked:
            table.append({"rank": len(table) + 1, "trial_id": t.trial_id, METRIC: t.best(METRIC), "epochs": t.epochs,
                          "config": config_of(t.config)})
    return table


def top_lines(rows: list[RecheckRow], trials: list[TrialRecord], top: int) -> list[str]:
    """The top-K table for a terminal: the re-check table (``rows``), else the K best single-seed scores."""
    if rows:
        return format_table(rows[:top])
    lines = [f"{'rank':<5}{'trial':<12}{'search EV':>10}{'epochs':>8}  sampled (not re-checked: single seed)"]
    for i, t in enumerate(rank(trials)[:top], 1):
        lines.append(f"{i:<5}{t.trial_id:<12}{t.best(METRIC):>10.4f}{t.epochs:>8}  {sampled_text(t.config)}")
    return lines
