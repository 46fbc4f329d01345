"""One small study, read by every test here: the search end to end, the racing re-check, one truth across Ray,
Optuna, MLflow and the export, then export, final training, compare, report and the documented tree of ``runs/``.

The study is built once per module: under pytest-xdist one worker takes a whole module, so these tests live together
(a test that reads this study belongs here). They run in this order; the later ones see what the earlier ones wrote
(the final training's folder, the report, the top-K export), as a user's study folder would hold it.
"""

import collections
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from searchutil import (TINY, assert_one_truth, documented_tree, mlflow_runs, optuna_states, pattern, read_trials,
                        run_search)

from analysis import compare, export, report
from trainables import train
from trainables.fitting.families import config_fields, epoch_metrics
from trainables.study.result import EPOCH_METRICS

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
OPAQUE = ("mlartifacts/", "features/")  # laid out by MLflow and the feature cache, not by the study


@pytest.fixture(scope="module")
def shallow_study(tmp_path_factory, private_cache):
    """The study every test here reads: shallow_cnn, 5 trials under ASHA, then the racing re-check of
    its 2 best configs over up to 2 seeds."""
    storage = tmp_path_factory.mktemp("study") / "runs"
    done = run_search("--space", "shallow_cnn", "--storage", str(storage), "--num-samples", "5", "--max-epochs", "4",
                      "--grace-period", "1", "--reduction-factor", "3", "--recheck-top", "2", "--recheck-seeds", "2",
                      *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    return SimpleNamespace(storage=storage, name="shallow_cnn", folder=storage / "shallow_cnn", out=done.stdout,
                           err=done.stderr)


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


def test_export_top_k_and_retrain_reproduces_the_trial(shallow_study, tmp_path, capsys):
    storage = shallow_study.storage
    out = tmp_path / "best.json"
    assert export.main(["--experiment", "shallow_cnn", "--storage", str(storage), "--out", str(out), "--top",
                        "3"]) == 0
    config = json.loads(out.read_text())
    prov = config["provenance"]
    assert {"experiment", "trial_id", "metric", "value", "epochs_reached", "git_commit", "data_fingerprint"} <= set(prov)
    top = json.loads((storage / "shallow_cnn" / "top3.json").read_text())
    assert top[0]["trial_id"] == prov["trial_id"] and len(top) <= 3
    rechecked = [row for row in top if "recheck_mean" in row]
    assert all(a["recheck_mean"] >= b["recheck_mean"] for a, b in zip(rechecked, rechecked[1:]))
    table = prov["recheck"]["table"]
    shown = capsys.readouterr().out
    assert f"{table[0]['mean']:.4f} +- {table[0]['se']:.4f}" in shown
    # The exported file trains unchanged, on the data the search used; the trial's config, another seed of it,
    # scores as the search's run and its re-check runs did.
    assert train.main(["--config", str(out), "--storage", str(storage)]) == 0
    metrics = json.loads((storage / "train" / "shallow_cnn" / "metrics.json").read_text())
    assert metrics["data_fingerprint"] == prov["data_fingerprint"]
    assert metrics["inner_ev"] == pytest.approx(prov["value"], abs=0.01)
    client, parents, _ = mlflow_runs(storage, "shallow_cnn")
    final = client.search_runs([parents[0].info.experiment_id], "tags.kind = 'final_training'")
    assert len(final) == 1 and final[0].data.tags["search_trial_id"] == prov["trial_id"]

    assert compare.main(["--storage", str(storage)]) == 0
    table = (storage / "compare.md").read_text()
    assert "| shallow_cnn |" in table
    assert (storage / "compare.csv").exists()
    with Image.open(storage / "compare.png") as im:
        im.verify()


def test_report_writes_valid_images_and_a_self_consistent_page(shallow_study, capsys):
    assert report.main(["--experiment", "shallow_cnn", "--storage", str(shallow_study.storage)]) == 0
    folder = shallow_study.folder / "report"
    page = (folder / "index.html").read_text()
    sources = re.findall(r"src='([^']+)'", page)
    assert {"history.png", "learning_curves.png", "parallel.png", "isolation.png"} <= set(sources)
    for src in sources:
        with Image.open(folder / src) as im:
            im.verify()
    assert "Best trial" in page and "Top-2 re-check: raced over new seeds" in page
    client, parents, _ = mlflow_runs(shallow_study.storage, "shallow_cnn")
    attached = {a.path for a in client.list_artifacts(parents[0].info.run_id, "report")}
    assert "report/index.html" in attached





def test_the_documented_tree_of_runs_is_what_a_study_writes(shallow_study, capsys):
    """Every file a study, its report and its export write is in the tree, and the tree's core entries exist."""
    assert report.main(["--experiment", "shallow_cnn", "--storage", str(shallow_study.storage)]) == 0
    assert export.main(["--experiment", "shallow_cnn", "--storage", str(shallow_study.storage), "--top", "2"]) == 0
    capsys.readouterr()
    tree = documented_tree()
    patterns = [pattern(p.replace("<study>/", "shallow_cnn/", 1)) for p in tree]
    storage = shallow_study.storage
    real = [str(p.relative_to(storage)) + ("/" if p.is_dir() else "") for p in storage.rglob("*")]
    real = [p for p in real if not p.startswith(OPAQUE) or p in OPAQUE]
    undocumented = [p for p in real if not any(pat.match(p) for pat in patterns)]
    assert not undocumented, f"not in docs/architecture.md's tree: {undocumented}"
    for required in ("mlflow.db", "<study>/search.json", "<study>/optuna.db", "<study>/trial_<id>/params.json",
                     "<study>/trial_<id>/result.json", "<study>/trial_<id>/inner_sums.npz",
                     "<study>/best_config.json", "<study>/best_model.pt", "<study>/trials.csv",
                     "<study>/report/index.html", "<study>/top<K>.json"):
        assert required in tree, f"{required} missing from the tree"
        wanted = pattern(required.replace("<study>/", "shallow_cnn/", 1))
        assert any(wanted.match(p) for p in real), f"{required} documented but not written"


def test_search_end_to_end(shallow_study):
    storage, out = shallow_study.storage, shallow_study.out
    assert "exported trial" in out and "mlflow ui --backend-store-uri sqlite:///" in out
    # Opens MLflow 3 on the runs table (not its GenAI view), on a saved view of it: best trial first, the score and
    # the scientific hyperparameter shown beside the data set.
    assert "/runs?viewStateShareKey=best-best-inner-ev&workflowType=machine_learning" in out
    from mlflow.tracking import MlflowClient

    experiment = MlflowClient(f"sqlite:///{storage.resolve() / 'mlflow.db'}").get_experiment_by_name("shallow_cnn")
    view = json.loads(json.loads(experiment.tags["mlflow.sharedViewState.best-best-inner-ev"])["state"])
    assert view["orderByKey"] == "metrics.`best_inner_ev`" and view["orderByAsc"] is False
    assert view["selectedColumns"] == ["metrics.`best_inner_ev`", "params.`width_mult`", "attributes.`Dataset`"]
    # Each run records the data set it saw (MLflow's Dataset column): its name and the data's fingerprint as digest.
    _, parents, children = mlflow_runs(storage, "shallow_cnn")
    fingerprint = json.loads((storage / "shallow_cnn" / "search.json").read_text())["data_fingerprint"]
    assert all([d.dataset.digest for d in r.inputs.dataset_inputs] == [fingerprint] for r in parents + children)
    # optuna-dashboard names the objective.
    import optuna

    study = optuna.load_study(study_name="shallow_cnn", storage=f"sqlite:///{storage / 'shallow_cnn' / 'optuna.db'}")
    assert study.metric_names == ["inner-validation EV (best epoch)"]
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
    assert {"space", "sampler", "scheduler", "profile", "seed", "data_fingerprint"} <= set(parent.data.params)
    assert {"git_commit", "ray_version", "optuna_version", "torch_version"} <= set(parent.data.tags)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"best_config.json", "trials.csv"} <= artifacts
    by_trial = {t["trial_id"]: t for t in trials}
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED"
        trial = by_trial[run.data.tags["trial_id"]]
        assert run.data.tags["status"] == trial["status"]
        assert set(run.data.params) == set(config_fields())  # the whole config it trained
        assert run.data.tags["sampled"] == "batch_size,lr,weight_decay,width_mult"
        assert set(run.data.metrics) <= set(epoch_metrics(EPOCH_METRICS))  # every trial's and its family's
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
    ran = [json.loads(p.read_text()) for p in (storage / "shallow_cnn").glob("trial_*/params.json")]
    first = min((c for c in ran if "_optuna_trial" in c), key=lambda c: c["_optuna_trial"])  # not a re-check run
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


def test_one_truth_in_the_shared_study(shallow_study):
    assert len(assert_one_truth(shallow_study.storage, "shallow_cnn")) == 5
