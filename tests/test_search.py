"""The search end to end: real Ray (local), real Optuna, real MLflow on SQLite, tiny synthetic data.

Most assertions read one shared study (``shallow_study`` in conftest.py: ASHA, then the racing re-check); the
others run the searches their case needs (a failing trial under Hyperband, the smoke profile's weights fallback).
"""

import collections
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from searchutil import TINY, mlflow_runs, optuna_states, read_trials, run_search
from trainables.core.config import FIELDS
from trainables.study.trial import EPOCH_METRICS

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_search_end_to_end(shallow_study):
    storage, out = shallow_study.storage, shallow_study.out
    assert "exported trial" in out and "mlflow ui --backend-store-uri sqlite:///" in out
    assert "/runs?workflowType=machine_learning" in out  # opens MLflow 3 on the runs table
    # The live display replaced Ray's status table, and the libraries' noise is gone.
    err = shallow_study.err
    assert "search shallow_cnn: " in err and "trials started" in err and "== Status ==" not in err
    assert "Token authentication is enabled" not in err and "Creating initial MLflow database" not in err
    assert not re.findall(r".*\w+Warning: .*", err)
    assert "scheduler asha (grace 1, reduction 3)" in err
    trials = read_trials(storage, "shallow_cnn")
    search = [t for t in trials if not t["recheck_of"]]
    assert len(search) == 5
    statuses = collections.Counter(t["status"] for t in search)
    assert statuses["failed"] == 0 and statuses["pruned"] >= 1 and statuses["completed"] >= 1

    # Optuna: ASHA-stopped trials are PRUNED, not COMPLETE with a truncated value; re-check runs are COMPLETE.
    states = optuna_states(storage, "shallow_cnn")
    rechecks = len(trials) - len(search)
    assert collections.Counter(states.values()) == {"COMPLETE": statuses["completed"] + rechecks,
                                                    "PRUNED": statuses["pruned"]}

    # MLflow: one parent, every trial nested under it, per-epoch history, real metrics only; the experiment
    # says it holds model training (MLflow 3's UI then opens on the runs table, not its GenAI view).
    client, parents, children = mlflow_runs(storage, "shallow_cnn")
    assert len(parents) == 1 and len(children) == len(trials)
    assert client.get_experiment_by_name("shallow_cnn").tags["mlflow.experimentKind"] == "custom_model_development"
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    exported = json.loads((storage / "shallow_cnn" / "best_config.json").read_text())["provenance"]
    assert parent.data.tags["best_trial_id"] == exported["trial_id"]
    assert parent.data.metrics["best_inner_ev"] == pytest.approx(exported["value"])
    assert {k: parent.data.tags[f"best.{k}"] for k in exported["sampled"]} == {
        k: str(v) for k, v in exported["sampled"].items()}
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
        assert set(run.data.params) == set(FIELDS)  # the whole config it trained
        assert run.data.tags["sampled"] == "batch_size,lr,weight_decay,width_mult"
        assert set(run.data.metrics) <= set(EPOCH_METRICS)
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "inner_ev")]
        assert steps == list(range(1, int(trial["epochs"]) + 1))

    # optuna-dashboard opens the study: every trial, PRUNED ones with the intermediate values they reported.
    dashboard = dashboard_study(storage / "shallow_cnn" / "optuna.db")
    states = collections.Counter(t["state"] for t in dashboard["trials"])
    assert states == {"Complete": statuses["completed"] + rechecks, "Pruned": statuses["pruned"]}
    for t in dashboard["trials"]:
        assert len(t["intermediate_values"]) >= 1 and {p["name"] for p in t["params"]} == {
            "batch_size", "lr", "weight_decay", "width_mult"}

    # The report's point was evaluated first.
    first = json.loads((sorted((storage / "shallow_cnn").glob("trial_*/params.json"),
                               key=lambda p: json.loads(p.read_text())["_optuna_trial"])[0]).read_text())
    assert first["width_mult"] == 1.0 and first["lr"] == 3e-3


def test_the_racing_recheck_ranks_by_mean_and_exports_it(shallow_study):
    """The 2 best configs raced over new seeds (1 round for a clear winner, 2 for a tie), in the same study, the same
    Optuna study and under the same MLflow parent run; the export takes the best mean."""
    storage, folder = shallow_study.storage, shallow_study.folder
    trials = read_trials(storage, "shallow_cnn")
    search = [t for t in trials if not t["recheck_of"]]
    rechecks = [t for t in trials if t["recheck_of"]]
    assert 2 <= len(rechecks) <= 4 and all(t["status"] == "completed" for t in rechecks)
    best = json.loads((folder / "best_config.json").read_text())
    recheck = best["provenance"]["recheck"]
    table = recheck["table"]
    # The 2 best: completed ones first, then (when fewer completed) those stopped early that went furthest.
    completed = sorted((t for t in search if t["status"] == "completed"), key=lambda t: -float(t["best_inner_ev"]))
    top = {r["trial_id"] for r in table}
    assert {t["trial_id"] for t in completed[:2]} <= top and {t["recheck_of"] for t in rechecks} <= top
    # Seeds 1, 2 (the search ran seed 0), one round at a time: a config's second seed only after both had a first.
    per_config = collections.Counter(t["recheck_of"] for t in rechecks)
    assert all(sorted(int(t["seed"]) for t in rechecks if t["recheck_of"] == c) == list(range(1, n + 1))
               for c, n in per_config.items())
    sampled = ("batch_size", "lr", "weight_decay", "width_mult")
    by_id = {t["trial_id"]: t for t in trials}
    assert all([t[k] for k in sampled] == [by_id[t["recheck_of"]][k] for k in sampled] for t in rechecks)

    assert recheck["runs"] == len(rechecks) <= 2 * 2 and len(table) == 2
    for row in table:
        values = [float(t["best_inner_ev"]) for t in rechecks if t["recheck_of"] == row["trial_id"]]
        if values:
            assert row["mean"] == pytest.approx(sum(values) / len(values), abs=1e-6)
        assert row["image_se"] > 0 and row["se"] >= row["image_se"]  # the bootstrap's share is in every SE
    assert best["provenance"]["trial_id"] == table[0]["trial_id"]
    out = shallow_study.out
    assert ("tie: #1 - #2" if recheck["tie"] else "#1 ahead: #1 - #2") in out
    assert f"{recheck['runs']} runs of at most 4" in out
    assert f"exported trial {table[0]['trial_id']}: best re-check mean {table[0]['mean']:.4f}" in out

    # Same study: Optuna holds the re-check trials, with the params of the trial each repeats and its seed.
    import optuna

    study = optuna.load_study(study_name="shallow_cnn", storage=f"sqlite:///{folder / 'optuna.db'}")
    repeats = [t for t in study.trials if "recheck_of" in t.user_attrs]
    assert len(repeats) == len(rechecks)
    for t in repeats:
        origin = study.trials[t.user_attrs["recheck_of"]]
        assert t.params == origin.params and t.user_attrs["seed"] in (1, 2) and t.state.name == "COMPLETE"
        assert t.user_attrs["config"]["seed"] == t.user_attrs["seed"]
    # Same MLflow parent run: the re-check runs are nested under it and say which trial they repeat.
    _, parents, children = mlflow_runs(storage, "shallow_cnn")
    tagged = sorted((r.data.tags.get("recheck_of"), r.data.params["seed"]) for r in children if "recheck_of" in r.data.tags)
    assert tagged == sorted((t["recheck_of"], t["seed"]) for t in rechecks)
    assert parents[0].data.metrics["best_recheck_mean"] == pytest.approx(table[0]["mean"])
    # The kept weights are of one of the exported config's runs; no other checkpoint is left.
    assert (folder / "best_model.pt").is_file() and not list(folder.rglob("checkpoint_*"))
    # Every completed trial kept what the bootstrap resamples.
    assert all((p.parent / "inner_sums.npz").is_file() for p in folder.rglob("trial_*/params.json")
               if by_id.get(p.parent.name.removeprefix("trial_"), {}).get("status") == "completed")


def dashboard_study(db: Path) -> dict:
    """The study as optuna-dashboard serves it (its REST API), from a server started on 127.0.0.1 for the call."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "optuna-dashboard"), f"sqlite:///{db}", "--host",
                               "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as reply:
                    studies = json.load(reply)["study_summaries"]
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}", timeout=30) as r:
            return json.load(r)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_failing_trials_are_counted_and_the_study_goes_on_under_hyperband(tmp_path):
    storage = tmp_path / "runs"
    done = run_search("--space", "flaky", "--storage", str(storage), "--num-samples", "3", "--max-epochs", "3",
                      "--grace-period", "1", "--scheduler", "hyperband", *TINY,
                      script=str(ROOT / "tests" / "flaky_space.py"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scheduler hyperband" in done.stderr
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


def assert_one_truth(storage: Path, name: str) -> list[dict]:
    """What ran (Ray's params.json) = what Optuna recorded = what MLflow shows = the trials table = the export.

    Returns the trials' configs, each with its ``_sampled`` names, for further checks.
    """
    import optuna

    from trainables.core.config import from_trial
    from trainables.study.tracking import mlflow_value

    folder = storage / name
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'optuna.db'}")
    by_number = {t.number: t for t in study.trials}
    _, _, runs = mlflow_runs(storage, name)
    runs = {r.data.tags["trial_id"]: r for r in runs}
    rows = {r["trial_id"]: r for r in read_trials(storage, name)}
    ran = []
    for params_file in sorted(folder.glob("trial_*/params.json")):
        params = json.loads(params_file.read_text())
        config = from_trial(params)
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


def test_one_truth_in_the_shared_study(shallow_study):
    assert len(assert_one_truth(shallow_study.storage, "shallow_cnn")) == 5


def test_smoke_fallback_is_per_backbone_and_recorded_the_same_everywhere(tmp_path, monkeypatch):
    """An empty torch cache: EfficientNet-Lite0 still runs pretrained (its weights ship with its package) and
    its weights are sampled; ResNet-34 (the second point) falls back to random, and nothing anywhere says otherwise."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    storage = tmp_path / "runs"
    done = run_search("--space", "backbone_screen", "--storage", str(storage), "--num-samples", "3",
                      "--max-epochs", "1", "--resolution", "32", "--images-per-object", "3", "--profile", "smoke")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "those backbones run with random weights; ImageNet weights used for efficientnet_lite0" in done.stderr
    assert "resnet34" in done.stderr.split("ImageNet weights not in the torch cache for")[1].split(":")[0]
    ran = {c["backbone"]: c for c in assert_one_truth(storage, "backbone_screen")}
    assert ran["efficientnet_lite0"]["weights"] == "imagenet" and "weights" in ran["efficientnet_lite0"]["_sampled"]
    assert ran["resnet34"]["weights"] == "random" and "weights" not in ran["resnet34"]["_sampled"]
    assert all(c["epochs"] == 1 for c in ran.values())
    # Ended trials leave no checkpoint behind; the best trial's weights are kept once.
    assert not list((storage / "backbone_screen").glob("trial_*/checkpoint_*"))
    assert (storage / "backbone_screen" / "best_model.pt").is_file()


def test_a_readout_study_compares_its_leaders_by_the_bootstrap(tmp_path):
    """Ridge fits do not depend on a seed: the re-check runs no seeds and says tie or ahead from the images alone."""
    storage = tmp_path / "runs"
    done = run_search("--space", "ridge_pixels", "--storage", str(storage), "--num-samples", "4", "--recheck-top",
                      "3", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "compared by a paired bootstrap over the inner split's objects" in done.stdout
    trials = read_trials(storage, "ridge_pixels")
    assert len(trials) == 4 and not any(t["recheck_of"] for t in trials)
    table = json.loads((storage / "ridge_pixels" / "best_config.json").read_text())["provenance"]["recheck"]["table"]
    assert len(table) == 3 and all(r["deterministic"] and r["n"] == 0 and r["image_se"] > 0 for r in table)
    assert table[0]["mean"] == table[0]["search_value"] and not math.isnan(table[0]["se"])
