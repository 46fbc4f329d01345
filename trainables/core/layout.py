"""The on-disk contract: the names of the files, folders and keys that one module writes and another reads.

A study, a final training and the caches are written by some modules and read by
others (Ray's own files, too, are read here); every such name is spelled in this
module, so that what the search writes and what ``analysis`` reads cannot drift
apart. A file that only its writer names (a report's figures) is named there.
``docs/architecture.md`` draws the tree.

A storage folder (``--storage``, default ``runs/``)::

    <storage>/mlflow.db          MLflow tracking store (the default tracking URI)
    <storage>/mlartifacts/       its artifacts
    <storage>/features/          cached layer activations (ridge readouts)
    <storage>/train/<run>/       final trainings (``trainables.train``)
    <storage>/compare.md         ``analysis.compare``'s table
    <storage>/<study>/           one study (``trainables.search --name``)

A study folder holds :data:`SEARCH_FILE`, :data:`OPTUNA_FILE`, Ray's trial folders
(``trial_<id>/params.json``, ``result.json``, ``checkpoint_*``; the search's trials and
the re-check's first round), :data:`RECHECK_DIR` with the re-check's later rounds, and at the end :data:`BEST_CONFIG_FILE`,
:data:`TRIALS_FILE` and :data:`BEST_WEIGHTS_FILE`.
"""

from __future__ import annotations

import os
from pathlib import Path

# --- a storage folder
MLFLOW_DB = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
FEATURES_DIR = "features"
TRAIN_DIR = "train"
LADDER_DIR = "ladder"  # trainables.ladder's answer, its rows' configs, their final trainings and Ray's folder of them
LADDER_CONFIGS, LADDER_RUNS, LADDER_RAY = "configs", "runs", "ray"  # inside LADDER_DIR
COMPARE_FILE = "compare.md"

# --- the user's cache folder (:func:`cache_dir`): synthetic data sets, their ground truth, an empty tracking store
EMPTY_MLFLOW_DB = "mlflow-{version}-empty.db"  # copied for each new SQLite tracking store

# --- a study folder
SEARCH_FILE = "search.json"  # the search plan (trainables.study.plan.search_plan)
OPTUNA_FILE = "optuna.db"
LOCK_FILE = "search.lock"  # held by the one process that runs the study
LOCK_FLOCK = f".{LOCK_FILE}.flock"  # the operating-system lock behind it
WHERE_FILE = ".where"  # the folder the study last ran in: a resume elsewhere sees that it moved
RECHECK_DIR = "recheck"  # Ray's folder of the top-K re-check's later rounds (round 1 runs in the search's Tuner)
BEST_CONFIG_FILE = "best_config.json"
TRIALS_FILE = "trials.csv"
BEST_WEIGHTS_FILE = "best_model.pt"  # also the name inside a completed trial's last checkpoint
REPORT_DIR = "report"
TRIAL_PREFIX = "trial_"  # Ray's trial folders: trial_<trial id>
PARAMS_FILE = "params.json"  # in a trial folder: the trial's config, as Ray wrote it
RESULT_FILE = "result.json"  # in a trial folder: one JSON line per reported epoch, as Ray wrote them
ERROR_FILE = "error.txt"  # in a trial folder: a failed trial's error, as Ray wrote it
CHECKPOINTS = "checkpoint_*"  # in a trial folder: Ray's checkpoint folders
TOP_FILE = "top{k}.json"  # analysis.export --top K
# Ray Tune's saved state of a search (the files Tuner.restore reads): its experiment state (JSON), then its pickles
EXPERIMENT_STATE = "experiment_state-*.json"
TUNER_FILE = "tuner.pkl"
RAY_STATE = (EXPERIMENT_STATE, "search_gen_state-*.json", "searcher-state-*.pkl", "basic-variant-state-*.json",
             TUNER_FILE)
STATE_FILE = "trainer.pt"  # a resumable checkpoint's training state
FINAL_FILE = "final.json"  # in a trial's last checkpoint: its last report (an ended trial is never run again)
INNER_SUMS_FILE = "inner_sums.npz"  # a completed trial's inner-split residuals summed per object (the re-check's)

# --- a final training's output folder
METRICS_FILE = "metrics.json"
CONFIG_FILE = "config.json"
MODEL_FILE = "model.pt"
PREDICTIONS_FILE = "predictions_{part}.npy"  # part: val, test; (N, n_sites)
SITE_RESPONSES_FILE = "site_responses.png"  # Figure 3: single sites' responses by category (the ladder shows the best's)
SITES_FILE = "sites.csv"  # per site: EV, r, the noise ceiling, EV / ceiling (with --seeds N: each seed's and the mean)
SEED_DIR = "seed_{seed}"  # --seeds N: one folder per seed

# --- keys a searcher adds to a trial's config besides the hyperparameters
SAMPLED_KEY = "_sampled"  # the names Optuna sampled (the rest of the config the space fixed)
OPTUNA_KEY = "_optuna_trial"  # the Optuna trial number
RECHECK_KEY = "_recheck_of"  # re-check trials: the id of the search trial they repeat



def sampled_params(trial_config: dict) -> dict:
    """The hyperparameters Optuna sampled for a trial, by name (the rest of its config was fixed by the space)."""
    return {k: trial_config[k] for k in trial_config.get(SAMPLED_KEY, ()) if k in trial_config}


def optuna_url(study_folder: Path) -> str:
    """The SQLAlchemy URL of a study's Optuna storage."""
    return f"sqlite:///{Path(study_folder).resolve() / OPTUNA_FILE}"


def default_tracking_uri(storage: Path) -> str:
    """The MLflow tracking store of a storage folder when no ``--tracking-uri`` is given."""
    return f"sqlite:///{Path(storage).resolve() / MLFLOW_DB}"


def cache_dir() -> Path:
    """``$ITSEARCH_CACHE``, else ``$XDG_CACHE_HOME/itsearch``, else ``~/.cache/itsearch``."""
    if os.environ.get("ITSEARCH_CACHE"):
        return Path(os.environ["ITSEARCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "itsearch"
