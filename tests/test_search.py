"""The search end to end: real Ray (local), real Optuna, real MLflow on SQLite, tiny synthetic data."""

import collections
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from searchutil import TINY, mlflow_runs, optuna_states, run_search
from trainables.tune_glue import EPOCH_METRICS

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def read_trials(storage, name):
    with open(Path(storage) / name / "trials.csv") as f:
        return list(csv.DictReader(f))


def test_search_end_to_end(tmp_path):
    storage = tmp_path / "runs"
    done = run_search("--space", "shallow_cnn", "--storage", str(storage), "--num-samples", "5", "--max-epochs", "4",
                      "--grace-period", "1", "--reduction-factor", "3", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "best trial" in done.stdout and "mlflow ui --backend-store-uri sqlite:///" in done.stdout
    trials = read_trials(storage, "shallow_cnn")
    assert len(trials) == 5
    statuses = collections.Counter(t["status"] for t in trials)
    assert statuses["failed"] == 0 and statuses["pruned"] >= 1 and statuses["completed"] >= 1

    # Optuna: ASHA-stopped trials are PRUNED, not COMPLETE with a truncated value.
    states = optuna_states(storage, "shallow_cnn")
    assert collections.Counter(states.values()) == {"COMPLETE": statuses["completed"], "PRUNED": statuses["pruned"]}

    # MLflow: one parent, every trial nested under it, per-epoch history, real metrics only.
    client, parents, children = mlflow_runs(storage, "shallow_cnn")
    assert len(parents) == 1 and len(children) == 5
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {"space", "searcher", "scheduler", "profile", "seed", "data_fingerprint"} <= set(parent.data.params)
    assert {"git_commit", "ray_version", "optuna_version", "torch_version"} <= set(parent.data.tags)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"best_config.json", "trials.csv"} <= artifacts
    by_trial = {t["trial_id"]: t for t in trials}
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED"
        trial = by_trial[run.data.tags["trial_id"]]
        assert run.data.tags["status"] == trial["status"]
        assert set(run.data.params) == {"batch_size", "lr", "weight_decay", "width_mult"}
        assert set(run.data.metrics) <= set(EPOCH_METRICS)
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "inner_ev")]
        assert steps == list(range(1, int(trial["epochs"]) + 1))

    # The report's point was evaluated first.
    first = json.loads((sorted((storage / "shallow_cnn").glob("trial_*/params.json"),
                               key=lambda p: json.loads(p.read_text())["_optuna_trial"])[0]).read_text())
    assert first["width_mult"] == 1.0 and first["lr"] == 3e-3

    # best_config.json trains unchanged.
    best = storage / "shallow_cnn" / "best_config.json"
    config = json.loads(best.read_text())
    assert config["provenance"]["experiment"] == "shallow_cnn" and config["epochs"] == 4
    out = tmp_path / "final"
    train = subprocess.run([sys.executable, "-m", "trainables.train", "--config", str(best), "--out", str(out),
                            "--max-epochs", "1", *TINY], capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr
    assert (out / "metrics.json").exists()


def _finished_trials(folder: Path) -> set:
    done = set()
    for result in folder.glob("trial_*/result.json"):
        if '"fit_done": 1' in result.read_text():
            done.add(result.parent.name)
    return done


def test_sigkill_then_resume_loses_and_repeats_nothing(tmp_path):
    storage = tmp_path / "runs"
    args = ["--space", "shallow_cnn", "--storage", str(storage), "--num-samples", "5", "--max-epochs", "6",
            "--grace-period", "6", *TINY]
    proc = subprocess.Popen([sys.executable, "-m", "trainables.search", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    folder = storage / "shallow_cnn"
    deadline = time.time() + 300
    while time.time() < deadline and not _finished_trials(folder):
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _finished_trials(folder)
    assert before, "no trial finished before the kill"
    lines_before = {t: (folder / t / "result.json").read_text() for t in before}

    done = run_search("--resume", "--name", "shallow_cnn", "--storage", str(storage))
    assert done.returncode == 0, done.stderr[-3000:]
    trials = read_trials(storage, "shallow_cnn")
    assert len(trials) == 5 and all(t["status"] == "completed" for t in trials)
    # Trials finished before the kill were not run again: their results are untouched.
    for t in before:
        assert (folder / t / "result.json").read_text() == lines_before[t]
    _, parents, children = mlflow_runs(storage, "shallow_cnn")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["trial_id"] for r in children) == sorted(t["trial_id"] for t in trials)
    assert all(r.info.status == "FINISHED" for r in children)


def test_failing_trials_are_counted_and_the_study_goes_on(tmp_path):
    storage = tmp_path / "runs"
    done = run_search("--space", "flaky", "--storage", str(storage), "--num-samples", "3", "--max-epochs", "3",
                      "--grace-period", "3", *TINY, script=str(ROOT / "tests" / "flaky_space.py"))
    assert done.returncode == 0, done.stderr[-3000:]
    trials = read_trials(storage, "flaky")
    statuses = collections.Counter(t["status"] for t in trials)
    assert len(trials) == 3 and statuses["failed"] >= 1 and statuses["completed"] >= 1
    assert f"{statuses['failed']} failed" in done.stdout
    assert "FAIL" in optuna_states(storage, "flaky").values()
    _, _, children = mlflow_runs(storage, "flaky")
    failed = [r for r in children if r.data.tags["status"] == "failed"]
    assert len(failed) == statuses["failed"] and all(r.info.status == "FAILED" for r in failed)
    best = json.loads((storage / "flaky" / "best_config.json").read_text())
    assert best["optimizer"] == "adam"
