"""Helpers for tests that run real searches (Ray, Optuna, MLflow on SQLite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TINY = ["--resolution", "32", "--images-per-object", "6", "--profile", "smoke"]


def run_search(*args, timeout=600, script=None, env=None) -> subprocess.CompletedProcess:
    """``python -m trainables.search ARGS`` (or a script); without the top-K re-check unless ARGS ask for it."""
    cmd = [sys.executable, script] if script else [sys.executable, "-m", "trainables.search"]
    if "--recheck-top" not in args:
        args = (*args, "--recheck-top", "0")
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env)


def mlflow_runs(storage: Path, experiment: str):
    """(parent run, child runs) of a search, from its SQLite tracking store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{Path(storage).resolve() / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("kind") == "search"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def optuna_states(storage: Path, name: str) -> dict:
    import optuna

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{Path(storage) / name / 'optuna.db'}")
    return {t.number: t.state.name for t in study.trials}
