"""Export the best configuration of a search, in the format ``trainables.train`` reads.

    python -m analysis.export --experiment NAME [--storage DIR] [--out FILE] [--top K]

By default the best trial among those that reached full fidelity (completed, not
pruned); ``--top K`` also writes a ranked table of the top K with their configs.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

from analysis.study import OBJECTIVE as METRIC
from analysis.study import TrialRecord, load_trials, read_settings, study_folder
from trainables.config import from_trial

log = logging.getLogger(__name__)
BEST_FILE, TRIALS_FILE = "best_config.json", "trials.csv"


class NothingToExport(RuntimeError):
    """No trial of the search finished."""


def rank(trials: list[TrialRecord], statuses=("completed",)) -> list[TrialRecord]:
    """Trials with one of ``statuses``, best inner-validation EV first."""
    scored = [t for t in trials if t.status in statuses and t.best(METRIC) is not None]
    return sorted(scored, key=lambda t: t.best(METRIC), reverse=True)


def best_config(folder: Path) -> dict:
    """The best completed trial's config with its provenance.

    Raises
    ------
    NothingToExport
        No completed trial.
    """
    settings = read_settings(folder)
    ranked = rank(load_trials(folder))
    if not ranked:
        raise NothingToExport(f"search '{settings['name']}' has no completed trial yet")
    best = ranked[0]
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
    return config


def write_trials_table(trials: list[TrialRecord], path: Path) -> Path:
    """One row per trial: id, status, epochs, best inner EV and r, node, sampled hyperparameters."""
    sampled = sorted({k for t in trials for k in t.config.get("_sampled", ())})
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trial_id", "status", "epochs", METRIC, "best_inner_r", "node_id", *sampled])
        for t in sorted(trials, key=lambda t: t.trial_id):
            r = t.best("inner_r")
            node = t.results[-1].get("node_id", "") if t.results else ""
            best = t.best(METRIC)
            writer.writerow([t.trial_id, t.status, t.epochs, "" if best is None else f"{best:.6f}",
                             "" if r is None else f"{r:.6f}", node, *[t.config.get(k, "") for k in sampled]])
    return path


def export(storage: Path, name: str, out: Path | None = None, top: int = 0) -> tuple[Path, dict]:
    """Write ``best_config.json`` and ``trials.csv`` (and the top-K table) for a search."""
    folder = study_folder(storage, name)
    trials = load_trials(folder)
    write_trials_table(trials, folder / TRIALS_FILE)  # written even when no trial completed
    config = best_config(folder)
    out = Path(out) if out else folder / BEST_FILE
    out.write_text(json.dumps(config, indent=2) + "\n")
    if top:
        ranked = rank(trials)[:top]
        table = [{"rank": i + 1, "trial_id": t.trial_id, METRIC: t.best(METRIC), "epochs": t.epochs,
                  "config": from_trial(t.config)} for i, t in enumerate(ranked)]
        (folder / f"top{top}.json").write_text(json.dumps(table, indent=2) + "\n")
    return out, config


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
    print(f"best trial {p['trial_id']}: {p['metric']} {p['value']:.4f} after {p['epochs_reached']} epochs -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
