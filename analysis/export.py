"""Export the best configuration of a search, in the format ``trainables.train`` reads.

    python -m analysis.export --experiment NAME [--storage DIR] [--out FILE] [--top K]

The exported configuration: when the search ran its top-K re-check
(:mod:`trainables.study.recheck`), the re-checked configuration with the best mean over
its new seeds, with every re-checked configuration's mean +- standard error and
whether #1 and #2 tie; otherwise the best trial among those that reached full
fidelity (completed, not pruned). ``--top K`` prints the K best (the re-check
table when there is one) and writes them to ``topK.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

from trainables.study.recheck import format_table, is_tie, recheck_table, sampled_text, search_trials
from trainables.study.records import OBJECTIVE as METRIC
from trainables.study.records import RECHECK_KEY, TrialRecord, load_trials, read_settings, study_folder
from trainables.core.config import from_trial

log = logging.getLogger(__name__)
BEST_FILE, TRIALS_FILE = "best_config.json", "trials.csv"


class NothingToExport(RuntimeError):
    """No trial of the search finished."""


def rank(trials: list[TrialRecord], statuses=("completed",)) -> list[TrialRecord]:
    """The searcher's trials with one of ``statuses``, best (single-seed) inner-validation EV first."""
    scored = [t for t in search_trials(trials) if t.status in statuses and t.best(METRIC) is not None]
    return sorted(scored, key=lambda t: t.best(METRIC), reverse=True)


def best_config(folder: Path, trials: list[TrialRecord] | None = None) -> dict:
    """The exported config with its provenance: the re-check's best mean, else the best completed trial.

    Raises
    ------
    NothingToExport
        No completed trial.
    """
    settings = read_settings(folder)
    trials = load_trials(folder) if trials is None else trials
    ranked, rows = rank(trials), recheck_table(trials)
    if not ranked and not rows:
        raise NothingToExport(f"search '{settings['name']}' has no completed trial yet")
    best = rows[0].trial if rows else ranked[0]
    config = from_trial(best.config)
    config["provenance"] = {
        "experiment": settings["name"],
        "space": settings["space"],
        "trial_id": best.trial_id,
        "metric": METRIC,
        "value": best.best(METRIC),
        "epochs_reached": best.epochs,
        "sampled": {k: best.config[k] for k in best.config.get("_sampled", ()) if k in best.config},
        "git_commit": settings.get("git_commit"),
        "data": settings.get("data"),
        "data_fingerprint": settings.get("data_fingerprint"),
        "tracking_uri": settings.get("tracking_uri"),
        "parent_run_id": settings.get("parent_run_id"),
    }
    if rows:
        # The search's own score of each config is kept apart: it was selected for being high.
        config["provenance"]["recheck"] = {
            "seeds": sorted({t.config.get("seed") for t in trials if t.config.get(RECHECK_KEY) == best.trial_id}),
            "table": [r.as_dict() for r in rows],
            "tie": len(rows) >= 2 and is_tie(rows[0], rows[1]),
        }
    return config


def write_trials_table(trials: list[TrialRecord], path: Path) -> Path:
    """One row per trial: id, status, epochs, best inner EV and r, node, seed, the trial a re-check repeats,
    sampled hyperparameters."""
    sampled = sorted({k for t in trials for k in t.config.get("_sampled", ())})
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
    out = Path(out) if out else folder / BEST_FILE
    out.write_text(json.dumps(config, indent=2) + "\n")
    if top:
        (folder / f"top{top}.json").write_text(json.dumps(top_table(trials, top), indent=2) + "\n")
    return out, config


def top_table(trials: list[TrialRecord], top: int) -> list[dict]:
    """The ``top`` best configs: re-checked ones by their mean (with SE and seeds), then the rest by search score."""
    rows = recheck_table(trials)
    table = [{"rank": i + 1, "trial_id": r.trial.trial_id, METRIC: r.search_value, "recheck_mean": r.mean,
              "recheck_se": r.se, "recheck_values": r.values, "epochs": r.trial.epochs,
              "config": from_trial(r.trial.config)} for i, r in enumerate(rows[:top])]
    rechecked = {r.trial.trial_id for r in rows}
    for t in rank(trials):
        if len(table) >= top:
            break
        if t.trial_id not in rechecked:
            table.append({"rank": len(table) + 1, "trial_id": t.trial_id, METRIC: t.best(METRIC), "epochs": t.epochs,
                          "config": from_trial(t.config)})
    return table


def top_lines(trials: list[TrialRecord], top: int) -> list[str]:
    """The top-K table for a terminal: the re-check table, else the K best single-seed scores."""
    rows = recheck_table(trials)
    if rows:
        return format_table(rows[:top])
    lines = [f"{'rank':<5}{'trial':<12}{'search EV':>10}{'epochs':>8}  sampled (not re-checked: single seed)"]
    for i, t in enumerate(rank(trials)[:top], 1):
        lines.append(f"{i:<5}{t.trial_id:<12}{t.best(METRIC):>10.4f}{t.epochs:>8}  {sampled_text(t.config)}")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.export", description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--storage", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--top", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        out, config = export(args.storage, args.experiment, args.out, args.top)
    except (FileNotFoundError, NothingToExport) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    p = config["provenance"]
    how = ""
    if p.get("recheck"):
        top = p["recheck"]["table"][0]
        how = f"best re-check mean {top['mean']:.4f} +- {top['se']:.4f} over {top['n']} seeds; in the search "
    print(f"exported trial {p['trial_id']}: {how}{p['metric']} {p['value']:.4f} after {p['epochs_reached']} epochs "
          f"-> {out}")
    if args.top:
        print("\n".join(top_lines(load_trials(study_folder(args.storage, args.experiment)), args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
