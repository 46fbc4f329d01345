"""Helpers for tests of the command lines: real searches in a subprocess, any command in-process."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = ["--resolution", "32", "--images-per-object", "6", "--profile", "smoke"]


def run_search(*args, timeout=600, script=None, env=None) -> subprocess.CompletedProcess:
    """``python -m trainables.search ARGS`` (or a script) in a subprocess; without the re-check unless ARGS ask."""
    cmd = [sys.executable, script] if script else [sys.executable, "-m", "trainables.search"]
    if "--recheck-top" not in args:
        args = (*args, "--recheck-top", "0")
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env)


def refused(main, argv, capsys) -> str:
    """Run a command's ``main(argv)`` in-process; assert it exits 2 with one line on stderr; return that line."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def read_trials(storage: Path, name: str) -> list[dict]:
    with open(Path(storage) / name / "trials.csv") as f:
        return list(csv.DictReader(f))


def mlflow_runs(storage: Path, experiment: str):
    """(client, parent runs, child runs) of a search, from its SQLite tracking store."""
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


def wait_for(predicate, timeout: float = 300.0, step: float = 0.2) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False
