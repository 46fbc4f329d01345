"""The search end to end: real Ray (local), real Optuna, real MLflow on SQLite, tiny synthetic data."""

import collections
import csv
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from searchutil import TINY, mlflow_runs, optuna_states, run_search
from trainables.core.config import FIELDS
from trainables.study.trial import EPOCH_METRICS

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
    assert "exported trial" in done.stdout and "mlflow ui --backend-store-uri sqlite:///" in done.stdout
    assert "/runs?workflowType=machine_learning" in done.stdout  # opens MLflow 3 on the runs table
    trials = read_trials(storage, "shallow_cnn")
    assert len(trials) == 5
    statuses = collections.Counter(t["status"] for t in trials)
    assert statuses["failed"] == 0 and statuses["pruned"] >= 1 and statuses["completed"] >= 1

    # Optuna: ASHA-stopped trials are PRUNED, not COMPLETE with a truncated value.
    states = optuna_states(storage, "shallow_cnn")
    assert collections.Counter(states.values()) == {"COMPLETE": statuses["completed"], "PRUNED": statuses["pruned"]}

    # MLflow: one parent, every trial nested under it, per-epoch history, real metrics only; the experiment
    # says it holds model training (MLflow 3's UI then opens on the runs table, not its GenAI view).
    client, parents, children = mlflow_runs(storage, "shallow_cnn")
    assert len(parents) == 1 and len(children) == 5
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
    assert states == {"Complete": statuses["completed"], "Pruned": statuses["pruned"]}
    for t in dashboard["trials"]:
        assert len(t["intermediate_values"]) >= 1 and {p["name"] for p in t["params"]} == {
            "batch_size", "lr", "weight_decay", "width_mult"}

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


def _finished_trials(folder: Path) -> set:
    done = set()
    for result in folder.glob("trial_*/result.json"):
        if '"fit_done": 1' in result.read_text():
            done.add(result.parent.name)
    return done


def test_sigkill_then_resume_loses_and_repeats_nothing(tmp_path):
    storage = tmp_path / "runs"
    args = ["--space", "shallow_cnn", "--storage", str(storage), "--num-samples", "5", "--max-epochs", "6",
            "--grace-period", "6", "--recheck-top", "0", *TINY]
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


def test_recheck_trains_the_best_configs_again_and_exports_the_best_mean(tmp_path):
    storage = tmp_path / "runs"
    done = run_search("--space", "shallow_cnn", "--storage", str(storage), "--num-samples", "3", "--max-epochs", "2",
                      "--scheduler", "fifo", "--recheck-top", "2", "--recheck-seeds", "2", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = storage / "shallow_cnn"
    trials = read_trials(storage, "shallow_cnn")
    search = [t for t in trials if not t["recheck_of"]]
    rechecks = [t for t in trials if t["recheck_of"]]
    assert len(search) == 3 and len(rechecks) == 4 and all(t["status"] == "completed" for t in trials)
    top2 = sorted(search, key=lambda t: float(t["best_inner_ev"]), reverse=True)[:2]
    # The two best configs, each with seeds 1 and 2 (the search ran seed 0), and otherwise the same values.
    assert sorted((t["recheck_of"], t["seed"]) for t in rechecks) == sorted(
        (t["trial_id"], s) for t in top2 for s in ("1", "2"))
    sampled = ("batch_size", "lr", "weight_decay", "width_mult")
    by_id = {t["trial_id"]: t for t in trials}
    assert all([t[k] for k in sampled] == [by_id[t["recheck_of"]][k] for k in sampled] for t in rechecks)

    # The export picks the best mean over the re-check seeds and carries mean +- SE for each.
    means = {tid: statistics.mean(float(t["best_inner_ev"]) for t in rechecks if t["recheck_of"] == tid)
             for tid in (t["trial_id"] for t in top2)}
    best = json.loads((folder / "best_config.json").read_text())
    table = best["provenance"]["recheck"]["table"]
    assert best["provenance"]["trial_id"] == max(means, key=means.get) == table[0]["trial_id"]
    for row in table:
        values = [float(t["best_inner_ev"]) for t in rechecks if t["recheck_of"] == row["trial_id"]]
        assert row["mean"] == pytest.approx(statistics.mean(values), abs=1e-6)
        assert row["se"] == pytest.approx(statistics.stdev(values) / math.sqrt(2), abs=1e-6)
    gap, se = table[0]["mean"] - table[1]["mean"], math.hypot(table[0]["se"], table[1]["se"])
    assert best["provenance"]["recheck"]["tie"] == (gap <= 2 * se)
    assert ("tie: #1 - #2" if gap <= 2 * se else "#1 ahead: #1 - #2") in done.stdout
    assert f"exported trial {table[0]['trial_id']}: best re-check mean {table[0]['mean']:.4f}" in done.stdout

    # Same study: Optuna holds the re-check trials, with the params of the trial each repeats and its seed.
    import optuna

    study = optuna.load_study(study_name="shallow_cnn", storage=f"sqlite:///{folder / 'optuna.db'}")
    repeats = [t for t in study.trials if "recheck_of" in t.user_attrs]
    assert len(study.trials) == 7 and len(repeats) == 4
    for t in repeats:
        origin = study.trials[t.user_attrs["recheck_of"]]
        assert t.params == origin.params and t.user_attrs["seed"] in (1, 2) and t.state.name == "COMPLETE"
        assert t.user_attrs["config"]["seed"] == t.user_attrs["seed"]
    # Same MLflow parent run: the re-check runs are nested under it and say which trial they repeat.
    _, parents, children = mlflow_runs(storage, "shallow_cnn")
    assert len(parents) == 1 and len(children) == 7
    tagged = sorted((r.data.tags.get("recheck_of"), r.data.params["seed"]) for r in children if "recheck_of" in r.data.tags)
    assert tagged == sorted((t["recheck_of"], t["seed"]) for t in rechecks)
    assert parents[0].data.metrics["best_recheck_mean"] == pytest.approx(table[0]["mean"])
    # The kept weights are of one of the exported config's runs; no other checkpoint is left.
    assert (folder / "best_model.pt").is_file() and not list(folder.rglob("checkpoint_*"))

    # analysis.export --top shows the same table.
    shown = subprocess.run([sys.executable, "-m", "analysis.export", "--experiment", "shallow_cnn", "--storage",
                            str(storage), "--top", "2"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert f"{table[0]['mean']:.4f} +- {table[0]['se']:.4f}" in shown.stdout
    assert f"{table[1]['mean']:.4f} +- {table[1]['se']:.4f}" in shown.stdout
    report = subprocess.run([sys.executable, "-m", "analysis.report", "--experiment", "shallow_cnn", "--storage",
                             str(storage)], capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    page = (folder / "report" / "index.html").read_text()
    assert "Top-2 re-check: 2 new seeds each" in page and f"{table[0]['mean']:.4f} ± {table[0]['se']:.4f}" in page

    # A finished search without the re-check can be re-checked afterwards with --resume.
    plain = run_search("--space", "shallow_cnn", "--name", "plain", "--storage", str(storage), "--num-samples", "2",
                       "--max-epochs", "1", "--scheduler", "fifo", "--recheck-top", "0", *TINY)
    assert plain.returncode == 0, plain.stderr[-3000:]
    again = run_search("--resume", "--name", "plain", "--storage", str(storage), "--recheck-top", "1",
                       "--recheck-seeds", "2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert sum(1 for t in read_trials(storage, "plain") if t["recheck_of"]) == 2
    assert "re-check of the 1 best config with new seeds" in again.stdout


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
        assert {k: v for k, v in config.items() if k in optuna_trial.params} == {
            k: v for k, v in optuna_trial.params.items() if k in config}
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


def test_full_profile_starts_with_every_checkpoint_cached_and_records_one_truth(tmp_path, monkeypatch,
                                                                                 checkpoint_mirror):
    """Every torchvision checkpoint in the torch cache (torchvision's randomly initialised state dicts under the
    real file names, see ``checkpoint_mirror``): the full profile starts, nothing falls back, one truth."""
    home = tmp_path / "torch"
    (home / "hub").mkdir(parents=True)
    (home / "hub" / "checkpoints").symlink_to(checkpoint_mirror.folder)
    monkeypatch.setenv("TORCH_HOME", str(home))
    storage = tmp_path / "runs"
    done = run_search("--space", "backbone_screen", "--profile", "full", "--storage", str(storage),
                      "--num-samples", "3", "--max-epochs", "1", "--resolution", "32", "--images-per-object", "3")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 completed" in done.stdout and "random weights" not in done.stderr
    ran = assert_one_truth(storage, "backbone_screen")
    for config in ran:
        assert config["backbone"] != "shallow_cnn" or config["weights"] == "random"
        assert ("weights" in config["_sampled"]) == (config["backbone"] != "shallow_cnn")
    lite0 = [c for c in ran if c["backbone"] == "efficientnet_lite0"]  # the first point: pretrained, fine-tuned
    assert lite0 and lite0[0]["weights"] == "imagenet"


def test_full_profile_with_checkpoints_missing_names_every_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    storage = tmp_path / "runs"
    done = run_search("--space", "backbone_screen", "--profile", "full", "--storage", str(storage), *TINY[:4],
                      timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--profile full needs ImageNet weights missing for" in lines[0]
    for name in ("resnet34-b627a593.pth", "vgg11_bn-6002323d.pth", "alexnet-owt-7be5be79.pth"):
        assert name in lines[0]
    assert not storage.exists()
