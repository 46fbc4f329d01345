"""Reading a search from disk, without a Ray cluster: the Ray experiment folder and the Optuna study.

Layout of ``<storage>/<name>/`` (written by ``trainables.search``):
``search.json`` (the search's settings and provenance), ``optuna.db`` (the Optuna
study), one folder per trial with Ray's ``params.json`` and ``result.json``, and
``recheck/`` holding the top-K re-check's trial folders the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# What every search maximises: the best inner-validation EV a trial reached.
OBJECTIVE = "best_inner_ev"
SEARCH_FILE = "search.json"
OPTUNA_FILE = "optuna.db"
# Top-K re-check trials (trainables.study.recheck): Ray's folder of them inside the search's, and the key in their config
# naming the search trial they repeat.
RECHECK_DIR, RECHECK_KEY = "recheck", "_recheck_of"
STATUS_BY_OPTUNA_STATE = {"COMPLETE": "completed", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running",
                          "WAITING": "waiting"}


class StudyNotFound(FileNotFoundError):
    """No search of that name in the storage folder; the message lists those found."""


@dataclass
class TrialRecord:
    """One trial as found on disk.

    Attributes
    ----------
    trial_id : str
    config : dict
        The trial's config as Ray recorded it (hyperparameters plus bookkeeping keys).
    results : list of dict
        One per reported epoch, in order.
    status : str
        completed / pruned / failed / running (interrupted).
    folder : Path
    """

    trial_id: str
    config: dict
    results: list = field(default_factory=list)
    status: str = "running"
    folder: Path | None = None

    @property
    def epochs(self) -> int:
        return len(self.results)

    def best(self, metric: str) -> float | None:
        values = [r[metric] for r in self.results if r.get(metric) is not None]
        return max(values) if values else None


def status_counts(trials: list[TrialRecord]) -> dict[str, int]:
    """The searcher's trials per status: completed, pruned, failed, running (unfinished); re-check trials apart."""
    trials = [t for t in trials if RECHECK_KEY not in t.config]
    return {s: sum(t.status == s for t in trials) for s in ("completed", "pruned", "failed", "running")}


def list_studies(storage: Path) -> list[str]:
    """Names of the searches under ``storage`` (folders holding a ``search.json``)."""
    storage = Path(storage)
    if not storage.is_dir():
        return []
    return sorted(p.parent.name for p in storage.glob(f"*/{SEARCH_FILE}"))


def study_folder(storage: Path, name: str) -> Path:
    """``<storage>/<name>``; StudyNotFound listing the searches found otherwise."""
    folder = Path(storage) / name
    if not (folder / SEARCH_FILE).is_file():
        found = list_studies(storage)
        listing = ", ".join(found) if found else "none"
        raise StudyNotFound(f"no search '{name}' in {storage} (searches found: {listing})")
    return folder


def read_settings(folder: Path) -> dict:
    return json.loads((Path(folder) / SEARCH_FILE).read_text())


def _read_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash
                continue
    # A trial resumed from a checkpoint reports its epochs again; keep the last of each.
    by_epoch = {}
    for row in rows:
        by_epoch[row.get("training_iteration", len(by_epoch) + 1)] = row
    return [by_epoch[k] for k in sorted(by_epoch)]


def optuna_states(folder: Path, study_name: str) -> dict[int, str]:
    """Optuna trial number -> state name, read from ``optuna.db``."""
    import optuna

    path = Path(folder) / OPTUNA_FILE
    if not path.is_file():
        return {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{path}")
    return {t.number: t.state.name for t in study.get_trials(deepcopy=False)}


def load_trials(folder: Path) -> list[TrialRecord]:
    """Every trial of a search, re-check trials included, with its status from the Optuna study (Ray's files for
    re-check trials and as fallback)."""
    folder = Path(folder)
    settings = read_settings(folder)
    states = optuna_states(folder, settings["name"])
    trials = []
    for params_file in sorted(folder.glob("*/params.json")) + sorted(folder.glob(f"{RECHECK_DIR}/*/params.json")):
        trial_dir = params_file.parent
        config = json.loads(params_file.read_text())
        results = _read_results(trial_dir / "result.json")
        trial_id = results[-1]["trial_id"] if results else trial_dir.name.split("_")[1]
        state = states.get(config.get("_optuna_trial"))
        if state is not None:
            status = STATUS_BY_OPTUNA_STATE.get(state, state.lower())
        elif (trial_dir / "error.txt").exists():
            status = "failed"
        elif results and results[-1].get("fit_done"):
            status = "completed"
        else:
            status = "running"
        trials.append(TrialRecord(trial_id, config, results, status, trial_dir))
    return trials
