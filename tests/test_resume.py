"""A study survives kills, copies and a second launcher: nothing lost, nothing run twice, nothing left RUNNING.

Real searches in subprocesses (they are killed); the resume-flag rules and the refusals that need no Ray are in-process.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from searchutil import TINY, mlflow_runs, read_trials, refused, run_search, wait_for

from trainables import search

ROOT = Path(__file__).resolve().parents[1]
KILLED = ["--space", "shallow_cnn", "--num-samples", "4", "--max-epochs", "3", "--scheduler", "fifo", *TINY]



def finished(folder: Path) -> set[str]:
    return {p.parent.name for p in folder.glob("trial_*/result.json") if '"fit_done": 1' in p.read_text()}


def ray_processes(session: str) -> list[str]:
    """Processes of a Ray session still alive: named after it, or renamed ``ray::...`` by it (workers, agents)."""
    from trainables.study.run.watchdog import processes

    table = processes()
    named = {pid for pid, (_, _, cmd) in table.items() if session in cmd}
    return [cmd for pid, (ppid, _, cmd) in table.items() if pid in named or (cmd.startswith("ray::") and ppid in
                                                                             named | {1})]


def latest_session() -> str:
    return sorted((Path(os.environ["RAY_TMPDIR"]) / "ray").glob("session_2*"))[-1].name


def assert_nothing_left_running(storage: Path, name: str) -> list[dict]:
    """No Optuna trial or MLflow run RUNNING, no metric step logged twice, one MLflow run per trial."""
    import optuna

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{storage / name / 'optuna.db'}")
    assert not [t.number for t in study.trials if t.state.name == "RUNNING"]
    client, parents, children = mlflow_runs(storage, name)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert all(r.info.status != "RUNNING" for r in children)
    trials = read_trials(storage, name)
    assert sorted(r.data.tags["trial_id"] for r in children if r.data.tags.get("status") != "interrupted") == sorted(
        t["trial_id"] for t in trials)
    for run in children:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "inner_ev")]
        assert len(steps) == len(set(steps)), f"a step logged twice: {steps}"
    return trials


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
    """A study (fifo) killed with SIGKILL right after a trial reported its last epoch, and a copy of it elsewhere."""
    storage = tmp_path_factory.mktemp("killed") / "runs"
    folder = storage / "shallow_cnn"
    proc = subprocess.Popen([sys.executable, "-m", "trainables.search", "--storage", str(storage), "--recheck-top", "0",
                             *KILLED], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    assert wait_for(lambda: finished(folder)), "no trial finished"
    session = latest_session()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {t: (folder / t / "result.json").read_text() for t in finished(folder)}
    left = wait_for(lambda: not ray_processes(session), timeout=10)
    copy = storage.parent / "elsewhere" / "runs"
    shutil.copytree(storage, copy)
    return SimpleNamespace(storage=storage, folder=folder, pid=proc.pid, before=before, ray_gone=left, copy=copy)


@pytest.mark.slow
def test_a_killed_study_resumes_through_a_second_launcher_and_a_sigterm_losing_and_repeating_nothing(killed):
    """SIGKILL right after a trial's last report (no Ray process outlives the driver); a resume takes the dead
    driver's lock over, refuses a second launcher naming its PID and host, ends cleanly on SIGTERM with the command
    that resumes it; the next resume runs every trial once (the one that had ended is not run again) and leaves
    nothing RUNNING; a last one re-checks the finished study."""
    storage, folder = killed.storage, killed.folder
    assert killed.ray_gone, "Ray processes outlived the killed driver"
    launched = time.time()
    first = subprocess.Popen([sys.executable, "-m", "trainables.search", "--resume", "--name", "shallow_cnn",
                              "--storage", str(storage), "--recheck-top", "0"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    assert wait_for(lambda: f'"pid": {first.pid}' in (folder / "search.lock").read_text()
                    if (folder / "search.lock").is_file() else False, 120)
    second = run_search("--storage", str(storage), *KILLED, timeout=120)
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(lines) == 1, second.stderr
    assert f"being run by PID {first.pid} on host {socket.gethostname()}" in lines[0]
    assert wait_for(lambda: any(p.stat().st_mtime > launched for p in folder.glob("trial_*/result.json")), 180)
    session = latest_session()
    first.send_signal(signal.SIGTERM)
    out, err = first.communicate(timeout=180)
    assert first.returncode == 1 and "Traceback" not in err, err[-2000:]
    assert f"took over the study from PID {killed.pid}" in err
    assert f"continue it with: python -m trainables.search --resume --name shallow_cnn --storage {storage}" in out
    assert wait_for(lambda: not ray_processes(session), timeout=10)

    done = run_search("--resume", "--name", "shallow_cnn", "--storage", str(storage))
    assert done.returncode == 0, done.stderr[-3000:]
    trials = assert_nothing_left_running(storage, "shallow_cnn")
    assert len(trials) == 4 and all(t["status"] == "completed" and t["epochs"] == "3" for t in trials)
    for t, before in killed.before.items():  # ended before the kill: not run again (at most its last report again)
        after = (folder / t / "result.json").read_text()
        assert after.startswith(before) and max(json.loads(x)["epoch"] for x in after.splitlines() if x.strip()) == 3
    assert not (folder / "search.lock").exists()

    again = run_search("--resume", "--name", "shallow_cnn", "--storage", str(storage), "--recheck-top", "2",
                       "--recheck-seeds", "2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert 2 <= sum(1 for t in read_trials(storage, "shallow_cnn") if t["recheck_of"]) <= 4
    assert "re-check of the 2 best configs" in again.stdout
    assert_nothing_left_running(storage, "shallow_cnn")


@pytest.mark.slow
def test_a_copied_study_resumes_where_it_lies_and_the_original_stays_as_it_was(killed):
    """The copy, made right after the kill, names the original folder in Ray's saved state and in MLflow's artifact
    locations: its resume writes nothing there."""
    copy, original = killed.copy, killed.storage
    snapshot = {p: p.read_bytes() for p in original.rglob("*") if p.is_file()}
    done = run_search("--resume", "--name", "shallow_cnn", "--storage", str(copy))
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming search 'shallow_cnn' from {copy / 'shallow_cnn'}" in done.stderr
    assert str(original) not in done.stdout
    assert {p: p.read_bytes() for p in original.rglob("*") if p.is_file()} == snapshot
    assert len(assert_nothing_left_running(copy, "shallow_cnn")) == 4
    assert list((copy / "mlartifacts").rglob("best_config.json"))


def test_requests_this_machine_can_never_satisfy_are_refused_before_ray_starts(tmp_path, capsys):
    """A private Ray instance gets this machine's CPUs and GPUs: a larger request is refused before Ray starts (a
    cluster's nodes are checked once the search has joined it: tests/test_cluster.py)."""
    import torch

    storage = tmp_path / "runs"
    cpus = os.cpu_count()
    line = refused(search.main, ["--space", "shallow_cnn", "--storage", str(storage), "--cpus-per-trial",
                                 str(cpus + 1), *TINY], capsys)
    assert f"--cpus-per-trial {cpus + 1}: this machine has {cpus} CPU" + "s" * (cpus != 1) in line
    gpus = torch.cuda.device_count()
    line = refused(search.main, ["--space", "shallow_cnn", "--storage", str(storage), "--gpus-per-trial",
                                 str(gpus + 1), *TINY], capsys)
    has = f"{gpus} GPU" + "s" * (gpus != 1) if gpus else "no GPU"
    assert f"--gpus-per-trial {gpus + 1}: this machine has {has}" in line
    assert not storage.exists()


def make_study(tmp_path, name="old") -> Path:
    """A study folder as a search leaves it after its start: its plan and its (empty) Optuna study."""
    import optuna

    from trainables.study.plan.search_plan import (DataPlan, RecheckPlan, ResourcePlan, SchedulerPlan, SearchPlan,
                                                   write_plan)

    folder = tmp_path / "runs" / name
    folder.mkdir(parents=True)
    plan = SearchPlan(name=name, space="shallow_cnn", scientific="width_mult", sampler="qmc", seed=0, num_samples=4,
                      scheduler=SchedulerPlan("asha", 2, 3.0, 6), recheck=RecheckPlan(2, 2),
                      resources=ResourcePlan(1.0, 0.0), data=DataPlan("synthetic", 0, 32, 6), profile="smoke",
                      max_epochs=6)
    write_plan(plan, folder)
    optuna.create_study(study_name=name, storage=f"sqlite:///{folder / 'optuna.db'}")
    return folder


def test_a_resume_refuses_flags_that_contradict_the_study_and_names_those_it_ignores(tmp_path, capsys):
    folder = make_study(tmp_path)
    storage = folder.parent
    line = refused(search.main, ["--resume", "--name", "old", "--storage", str(storage), "--space", "vgg_depth"], capsys)
    assert "--space vgg_depth contradicts study 'old' (shallow_cnn)" in line
    line = refused(search.main, ["--resume", "--name", "old", "--storage", str(storage), "--num-samples", "9"], capsys)
    assert "--num-samples 9 contradicts study 'old' (4)" in line
    line = refused(search.main, ["--resume", "--name", "old", "--storage", str(storage), "--scheduler", "fifo"], capsys)
    assert "--scheduler fifo contradicts" in line
    assert "invalid choice" in refused(search.main, ["--resume", "--name", "old", "--scheduler", "nope"], capsys)
    assert "--num-samples must be >= 1" in refused(search.main, ["--resume", "--name", "old", "--storage",
                                                                 str(storage), "--num-samples", "0"], capsys)
    line = refused(search.main, ["--resume", "--name", "old", "--storage", str(storage), "--data", "/no/file.h5"],
                   capsys)
    assert "data file not found: /no/file.h5" in line or "contradicts" in line


def test_damaged_study_files_are_named_with_what_to_do(tmp_path, capsys):
    from analysis import export, report

    folder = make_study(tmp_path)
    (folder / "optuna.db").write_bytes(b"SQLite format 3\0" + b"\0" * 50)
    for main in (export.main, report.main):
        line = refused(main, ["--experiment", "old", "--storage", str(folder.parent)], capsys)
        assert f"{folder / 'optuna.db'} cannot be read" in line and "restore it from a copy" in line
    assert not (folder / "report").exists()
    line = refused(search.main, ["--resume", "--name", "old", "--storage", str(folder.parent)], capsys)
    assert "optuna.db cannot be read" in line
    (folder / "search.json").write_text((folder / "search.json").read_text()[:100])
    line = refused(search.main, ["--resume", "--name", "old", "--storage", str(folder.parent)], capsys)
    assert f"{folder / 'search.json'} is damaged" in line


def test_an_unreachable_cluster_address_fails_within_seconds(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.time()
    line = refused(search.main, ["--space", "shallow_cnn", "--storage", str(tmp_path / "runs"), "--address",
                                 f"127.0.0.1:{port}", *TINY], capsys)
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in line and time.time() - start < 60
    assert not (tmp_path / "runs").exists()


def test_a_trial_that_ended_before_the_kill_keeps_its_status_and_its_epochs_in_mlflow(tmp_path):
    """A moved study's trial that ended just before the kill, its MLflow run still RUNNING and its last epoch not
    logged (the callbacks died with the driver): the finished study closes the run as completed with every epoch;
    a trial that had not ended is closed as interrupted."""
    import optuna
    from mlflow.tracking import MlflowClient

    from trainables.study.plan.search_plan import TrackingPlan
    from trainables.study.records.trials import TrialRecord
    from trainables.study.result import EPOCH_METRICS
    from trainables.study.run.recovery import close_leftovers

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("study")
    parent = client.create_run(experiment).info.run_id
    runs = {t: client.create_run(experiment, tags={"mlflow.parentRunId": parent, "trial_id": t, "status": "running"})
            .info.run_id for t in ("ended", "cut")}
    client.log_metric(runs["ended"], "inner_ev", 0.1, step=1)
    optuna.create_study(study_name="study", storage=f"sqlite:///{tmp_path / 'optuna.db'}").ask()
    trials = [TrialRecord("ended", {}, [{"epoch": 1, "inner_ev": 0.1}, {"epoch": 2, "inner_ev": 0.2, "fit_done": 1}],
                          "completed"),
              TrialRecord("cut", {}, [{"epoch": 1, "inner_ev": 0.05}], "running")]
    close_leftovers(tmp_path, "study", uri, TrackingPlan(None, experiment, parent), trials, EPOCH_METRICS)

    ended, cut = client.get_run(runs["ended"]), client.get_run(runs["cut"])
    assert (ended.info.status, ended.data.tags["status"]) == ("FINISHED", "completed")
    assert [(m.step, m.value) for m in client.get_metric_history(runs["ended"], "inner_ev")] == [(1, 0.1), (2, 0.2)]
    assert (cut.info.status, cut.data.tags["status"]) == ("KILLED", "interrupted")
    assert [t.state.name for t in optuna.load_study(study_name="study", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
            .trials] == ["FAIL"]


def test_a_trial_whose_node_died_before_its_folder_reached_the_storage_is_still_a_trial(tmp_path):
    """Ray placed the trial on a node that died before the trial's folder reached the storage: Optuna knows it as
    FAIL with its config and Ray's id, so the records, trials.csv and the summary's counts have it; a trial Optuna
    asked for that never ran (abandoned by a resume) is none."""
    import csv

    import optuna
    from studyutil import NAME, build_study

    from trainables.core.layout import optuna_url
    from trainables.fitting.families import complete
    from trainables.study.export.best_config import export
    from trainables.study.records.trials import RAY_TRIAL_ATTR, load_trials, status_counts
    from trainables.study.run.recovery import abandon

    storage = build_study(tmp_path / "runs")
    folder = storage / NAME
    study = optuna.load_study(study_name=NAME, storage=optuna_url(folder))
    lost = study.ask()
    width = lost.suggest_float("width_mult", 0.5, 2.0)
    lost.set_user_attr("config", complete({"backbone": "shallow_cnn", "width_mult": width, "epochs": 4}))
    lost.set_user_attr(RAY_TRIAL_ATTR, "d1ed0001")
    study.tell(lost, state=optuna.trial.TrialState.FAIL)
    never = study.ask()
    never.suggest_float("width_mult", 0.5, 2.0)
    never.set_user_attr(RAY_TRIAL_ATTR, "a5ked001")
    abandon(study, next(t for t in study.trials if t.number == never.number))

    trials = load_trials(folder)
    found = [t for t in trials if t.trial_id == "d1ed0001"]
    assert len(found) == 1 and (found[0].status, found[0].epochs, found[0].folder) == ("failed", 0, None)
    assert found[0].config["width_mult"] == width and found[0].config["_sampled"] == ["width_mult"]
    assert not [t for t in trials if t.trial_id == "a5ked001"]
    assert status_counts(trials) == {"completed": 2, "pruned": 0, "failed": 1, "running": 1}
    export(storage, NAME)
    with open(folder / "trials.csv") as f:
        rows = {r["trial_id"]: r for r in csv.DictReader(f)}
    assert (rows["d1ed0001"]["status"], rows["d1ed0001"]["epochs"]) == ("failed", "0")
    assert float(rows["d1ed0001"]["width_mult"]) == width
