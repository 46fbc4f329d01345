"""Reading a study from disk, without a Ray cluster: Ray's trial folders and the Optuna study.

The layout (:mod:`trainables.core.layout`): ``<storage>/<name>/`` holds the plan
(``search.json``), the Optuna study (``optuna.db``), one folder per trial with
Ray's ``params.json`` and ``result.json`` (the search's trials and the top-K
re-check's first round), and ``recheck/`` with the re-check's later rounds the
same way.
"""

from __future__ import annotations

import json
import sqlite3
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
from sqlalchemy.exc import SQLAlchemyError

from trainables.core.layout import (CHECKPOINTS, ERROR_FILE, INNER_SUMS_FILE, OPTUNA_FILE, OPTUNA_KEY, PARAMS_FILE,
                                    RECHECK_DIR, RECHECK_KEY, RESULT_FILE, SAMPLED_KEY, SEARCH_FILE, TRIAL_PREFIX,
                                    optuna_url)
from trainables.core.metrics import ObjectSums
from trainables.core.sqlite import check_sqlite
from trainables.fitting.families import complete, config_of
from trainables.study.plan.search_plan import read_plan
from trainables.study.result import (ENDED, EPOCH, FAILED, FIT_DONE, NODE_ID, OBJECTIVE, RUNNING,
                                     STATUS_BY_OPTUNA_STATE, epoch_of, status_on_disk)

# User attributes of a search's Optuna trials: Ray's id of the trial (set when the searcher gives it to Ray), and
# the mark of a trial that never ran and whose point was queued again (a resumed study's).
RAY_TRIAL_ATTR, REQUEUED_ATTR = "trial_id", "requeued"
# The keys a searcher adds to a trial's Ray config, and their types.
BOOKKEEPING = {SAMPLED_KEY: list, OPTUNA_KEY: int, RECHECK_KEY: str}
# The numbers of a reported result that the study reads.
NUMBERS = (OBJECTIVE, "inner_ev", "inner_r", EPOCH, "training_iteration", "time_this_iter_s", "time_total_s",
           "timestamp", FIT_DONE)
# Tables every Optuna store has; a database without them is not one.
OPTUNA_TABLES = ("studies", "trials", "trial_values", "trial_params")


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
    status: str = RUNNING
    folder: Path | None = None

    @property
    def epochs(self) -> int:
        return len(self.results)

    def best(self, metric: str) -> float | None:
        values = [r[metric] for r in self.results if r.get(metric) is not None]
        return max(values) if values else None

    def pace(self) -> tuple[int, float, float]:
        """(epochs run, seconds of its last epoch, seconds from its first result's start to its last) for
        :func:`trainables.study.plan.pace.measure`."""
        last = self.results[-1]
        return (len(self.results), last.get("time_this_iter_s", 0.0), last.get("time_total_s", 0.0))

    def evidence(self) -> ObjectSums | None:
        """Its best epoch's inner-split residuals summed per object, when the trial completed and kept them (in its
        folder, or still in its last checkpoint)."""
        if self.folder is None:
            return None
        paths = [Path(self.folder) / INNER_SUMS_FILE] + [c / INNER_SUMS_FILE for c in
                                                         sorted(Path(self.folder).glob(CHECKPOINTS), reverse=True)]
        path = next((p for p in paths if p.is_file()), None)
        if path is None:
            return None
        try:
            with np.load(path) as stored:
                return ObjectSums({key: stored[key] for key in stored.files})
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):  # cut by a kill: the re-check does
            return None  # without it


def status_counts(trials: list[TrialRecord]) -> dict[str, int]:
    """The searcher's trials per status: completed, pruned, failed, running (unfinished); re-check trials apart."""
    trials = [t for t in trials if RECHECK_KEY not in t.config]
    return {s: sum(t.status == s for t in trials) for s in (*ENDED, RUNNING)}


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


class StudyDamaged(RuntimeError):
    """A study file that cannot be read; the message names the file and what to do."""


def _read_results(path: Path) -> list[dict]:
    """A trial's reported epochs (Ray's ``result.json``, one JSON object per line); its last line may be cut (a kill
    while Ray wrote it) and is then left out; StudyDamaged naming the file when any other line is no result."""
    if not path.is_file():
        return []
    rows = []
    try:
        lines = path.read_bytes().decode("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise StudyDamaged(f"{path} cannot be read ({type(err).__name__}); delete its trial folder to drop that "
                           "trial") from None
    lines = [line.strip() for line in lines if line.strip()]
    for i, line in enumerate(lines):
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as err:
            if i == len(lines) - 1 and line.startswith("{"):  # the last line, cut by a kill
                continue
            raise StudyDamaged(f"{path} cannot be read (line {i + 1}: {type(err).__name__}); delete its trial folder "
                               "to drop that trial") from None
        try:
            if not isinstance(row, dict):
                raise ValueError(f"a JSON {type(row).__name__}")
            for key in NUMBERS:
                if row.get(key) is not None and (not isinstance(row[key], (int, float)) or isinstance(row[key], bool)):
                    raise ValueError(f"{key}: {row[key]!r}")
            if not isinstance(row.get("trial_id", ""), str) or not isinstance(row.get(NODE_ID, ""), str):
                raise ValueError("trial_id or node_id not a string")
            rows.append(row)
        except ValueError as err:
            raise StudyDamaged(f"{path} cannot be read (line {i + 1}: {err}); delete its trial folder to drop that "
                               "trial") from None
    # A trial resumed from a checkpoint reports its epochs again (Ray's training_iteration counts on; the trial's own
    # epoch repeats); keep the last of each.
    by_epoch = {}
    for row in rows:
        by_epoch[epoch_of(row) or len(by_epoch) + 1] = row
    return [by_epoch[k] for k in sorted(by_epoch)]


def load_optuna_study(folder: Path, study_name: str) -> optuna.Study:
    """The study's Optuna study; StudyDamaged naming ``optuna.db`` when it cannot be read."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        # Read first (creating nothing): Optuna would create its tables in an empty or foreign file.
        check_sqlite(Path(folder) / OPTUNA_FILE, OPTUNA_TABLES)
        return optuna.load_study(study_name=study_name, storage=optuna_url(folder))
    except (SQLAlchemyError, sqlite3.Error, KeyError, ValueError, RuntimeError) as err:
        raise StudyDamaged(f"{Path(folder) / OPTUNA_FILE} cannot be read ({type(err).__name__}: "
                           f"{str(err).splitlines()[0][:120]}); restore it from a copy") from None


def optuna_trials(folder: Path, study_name: str) -> list[optuna.trial.FrozenTrial]:
    """The Optuna study's trials, read from ``optuna.db`` (none when there is none yet)."""
    if not (Path(folder) / OPTUNA_FILE).is_file():
        return []
    return load_optuna_study(folder, study_name).get_trials(deepcopy=False)


def optuna_states(folder: Path, study_name: str) -> dict[int, str]:
    """Optuna trial number -> state name, read from ``optuna.db`` (empty when there is none yet)."""
    return {t.number: t.state.name for t in optuna_trials(folder, study_name)}


def lost_trial(trial: optuna.trial.FrozenTrial) -> TrialRecord | None:
    """A search trial that Ray ran (the searcher gave it Ray's id) but whose folder never reached the storage (its
    node died first), as Optuna recorded it: FAIL, with its config; None for any other Optuna trial."""
    attrs = trial.user_attrs
    if (trial.state.name != "FAIL" or RAY_TRIAL_ATTR not in attrs or "recheck_of" in attrs or REQUEUED_ATTR in attrs
            or not isinstance(attrs.get("config"), dict)):
        return None
    try:
        config = {**complete(attrs["config"]), SAMPLED_KEY: sorted(trial.params), OPTUNA_KEY: trial.number}
    except ValueError:  # a config this release cannot read: the trial folder would say more, and there is none
        return None
    return TrialRecord(str(attrs[RAY_TRIAL_ATTR]), {**trial.params, **config}, [], FAILED, None)


def trial_config(params_file: Path) -> dict:
    """A trial's Ray config from its ``params.json``, its config completed and validated (once, as it is read);
    StudyDamaged naming the file when it cannot be read or is no config."""
    try:
        raw = json.loads(params_file.read_bytes().decode("utf-8"))
        if not isinstance(raw, dict):
            raise ValueError(f"a JSON {type(raw).__name__}, not an object")
        for key, kind in BOOKKEEPING.items():
            if key in raw and (not isinstance(raw[key], kind) or isinstance(raw[key], bool)):
                raise ValueError(f"{key}: {raw[key]!r}")
        if not all(isinstance(name, str) for name in raw.get(SAMPLED_KEY, ())):
            raise ValueError(f"{SAMPLED_KEY}: {raw[SAMPLED_KEY]!r}")
        return {**raw, **complete(config_of(raw))}
    except (OSError, ValueError, RecursionError) as err:  # ConfigError, JSON and UTF-8 errors are ValueErrors
        raise StudyDamaged(f"{params_file} cannot be read ({type(err).__name__}: {str(err)[:160]}); delete its trial "
                           "folder to drop that trial") from None


def load_trials(folder: Path) -> list[TrialRecord]:
    """Every trial of a search, re-check trials included, with its status from the Optuna study (Ray's files for
    re-check trials and as fallback)."""
    folder = Path(folder)
    known = optuna_trials(folder, read_plan(folder).name)
    states = {t.number: t.state.name for t in known}
    trials = []
    for params_file in (sorted(folder.glob(f"{TRIAL_PREFIX}*/{PARAMS_FILE}"))
                        + sorted(folder.glob(f"{RECHECK_DIR}/{TRIAL_PREFIX}*/{PARAMS_FILE}"))):
        trial_dir = params_file.parent
        config = trial_config(params_file)
        results = _read_results(trial_dir / RESULT_FILE)
        trial_id = results[-1]["trial_id"] if results else trial_dir.name.removeprefix(TRIAL_PREFIX)
        state = states.get(config.get(OPTUNA_KEY))
        if state is not None:
            status = STATUS_BY_OPTUNA_STATE.get(state, state.lower())
        else:
            status = status_on_disk(results, (trial_dir / ERROR_FILE).exists())
        trials.append(TrialRecord(trial_id, config, results, status, trial_dir))
    # Trials whose node died before their folder reached the storage are trials too: Optuna knows them as FAIL.
    seen = {t.config.get(OPTUNA_KEY) for t in trials}
    return trials + [lost for t in known if t.number not in seen and (lost := lost_trial(t)) is not None]


def search_trials(trials: list[TrialRecord]) -> list[TrialRecord]:
    """The trials the searcher chose (re-check trials left out)."""
    return [t for t in trials if RECHECK_KEY not in t.config]
