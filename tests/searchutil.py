"""Helpers for tests of the command lines: real searches in a subprocess, any command in-process."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainables.core.layout import RECHECK_KEY

ROOT = Path(__file__).resolve().parents[1]
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


def assert_one_truth(storage: Path, name: str) -> list[dict]:
    """What ran (Ray's params.json) = what Optuna recorded = what MLflow shows = the trials table = the export.

    Returns the trials' configs, each with its ``_sampled`` names, for further checks.
    """
    import optuna

    from trainables.fitting.families import config_of
    from trainables.study.tracking.store import mlflow_value

    folder = storage / name
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'optuna.db'}")
    by_number = {t.number: t for t in study.trials}
    _, _, runs = mlflow_runs(storage, name)
    runs = {r.data.tags["trial_id"]: r for r in runs}
    rows = {r["trial_id"]: r for r in read_trials(storage, name)}
    ran = []
    for params_file in sorted(folder.glob("trial_*/params.json")):
        params = json.loads(params_file.read_text())
        if RECHECK_KEY in params:  # a re-check run in a slot the search left free (the re-check's tests check it)
            continue
        config = config_of(params)
        trial_id = params_file.parent.name.removeprefix("trial_")
        optuna_trial = by_number[params["_optuna_trial"]]
        assert optuna_trial.params == {k: params[k] for k in params["_sampled"]}
        assert optuna_trial.user_attrs["config"] == config
        run = runs[trial_id]
        assert run.data.params == {k: mlflow_value(v) for k, v in config.items()}
        assert run.data.tags["sampled"] == ",".join(params["_sampled"])
        row = rows[trial_id]
        for key in params["_sampled"]:
            assert row[key] == str(params[key])
        ran.append({**config, "_sampled": params["_sampled"], "_id": trial_id})
    best = json.loads((folder / "best_config.json").read_text())
    exported = next(c for c in ran if c["_id"] == best["provenance"]["trial_id"])
    assert {k: v for k, v in best.items() if k != "provenance"} == {
        k: v for k, v in exported.items() if not k.startswith("_")}
    return ran


def documented_tree() -> dict[str, str]:
    """docs/architecture.md's ``runs/`` tree as path pattern -> comment (placeholders and ``*`` as regexes)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"```\nruns/\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no runs/ tree"
    entries, stack = {}, []
    for line in block.group(1).splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name, _, comment = line.strip().partition("  #")
        stack[depth - 1:] = [name.strip()]
        entries["".join(stack)] = comment.strip()
    return entries


def pattern(path: str) -> re.Pattern:
    parts = re.split(r"(<[^>]+>|\*)", path)
    return re.compile("".join("[^/]+" if p.startswith("<") else "[^/]*" if p == "*" else re.escape(p)
                              for p in parts) + "$")
