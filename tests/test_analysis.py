"""Export, report and compare on a small search made here (real Ray, Optuna, MLflow)."""

import json
import re
import subprocess
import sys

import optuna
import pytest
from PIL import Image

from analysis.report import edge_warnings, importances
from searchutil import TINY, mlflow_runs, run_search


def run_module(module, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory):
    storage = tmp_path_factory.mktemp("analysis") / "runs"
    done = run_search("--space", "shallow_cnn", "--storage", str(storage), "--num-samples", "5", "--max-epochs", "3",
                      "--grace-period", "1", "--reduction-factor", "3", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    return storage


@pytest.mark.slow
def test_export_top_k_and_retrain_reproduces_the_trial(finished_search, tmp_path):
    out = tmp_path / "best.json"
    done = run_module("analysis.export", "--experiment", "shallow_cnn", "--storage", str(finished_search),
                      "--out", str(out), "--top", "3")
    assert done.returncode == 0, done.stderr
    config = json.loads(out.read_text())
    prov = config["provenance"]
    assert {"experiment", "trial_id", "metric", "value", "epochs_reached", "git_commit", "data_fingerprint"} <= set(prov)
    top = json.loads((finished_search / "shallow_cnn" / "top3.json").read_text())
    assert top[0]["trial_id"] == prov["trial_id"] and len(top) <= 3
    assert all(a["best_inner_ev"] >= b["best_inner_ev"] for a, b in zip(top, top[1:]))
    # The exported file trains unchanged, on the data the search used, and reproduces the trial's score.
    train = run_module("trainables.train", "--config", str(out), "--storage", str(finished_search))
    assert train.returncode == 0, train.stderr
    assert "data settings from the export's provenance" in train.stderr
    metrics = json.loads((finished_search / "train" / "shallow_cnn" / "metrics.json").read_text())
    assert metrics["data_fingerprint"] == prov["data_fingerprint"]
    assert metrics["inner_ev"] == pytest.approx(prov["value"], abs=0.01)
    client, parents, _ = mlflow_runs(finished_search, "shallow_cnn")
    final = client.search_runs([parents[0].info.experiment_id], "tags.kind = 'final_training'")
    assert len(final) == 1 and final[0].data.tags["search_trial_id"] == prov["trial_id"]

    compare = run_module("analysis.compare", "--storage", str(finished_search))
    assert compare.returncode == 0, compare.stderr
    table = (finished_search / "compare.md").read_text()
    assert "| shallow_cnn |" in table
    assert (finished_search / "compare.csv").exists()
    with Image.open(finished_search / "compare.png") as im:
        im.verify()


@pytest.mark.slow
def test_report_writes_valid_images_and_a_self_consistent_page(finished_search):
    done = run_module("analysis.report", "--experiment", "shallow_cnn", "--storage", str(finished_search))
    assert done.returncode == 0, done.stderr
    folder = finished_search / "shallow_cnn" / "report"
    page = (folder / "index.html").read_text()
    sources = re.findall(r"src='([^']+)'", page)
    assert {"history.png", "learning_curves.png", "parallel.png", "isolation.png"} <= set(sources)
    for src in sources:
        with Image.open(folder / src) as im:
            im.verify()
    assert "Best trial" in page
    client, parents, _ = mlflow_runs(finished_search, "shallow_cnn")
    attached = {a.path for a in client.list_artifacts(parents[0].info.run_id, "report")}
    assert "report/index.html" in attached


def test_missing_experiment_lists_what_exists(tmp_path):
    (tmp_path / "vgg_depth").mkdir()
    (tmp_path / "vgg_depth" / "search.json").write_text("{}")
    for module in ("analysis.export", "analysis.report"):
        done = run_module(module, "--experiment", "nope", "--storage", str(tmp_path), timeout=120)
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "searches found: vgg_depth" in lines[0]


def _study(objective):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=60)
    return study


def test_importance_keeps_conditional_parameters():
    def objective(trial):
        optimizer = trial.suggest_categorical("optimizer", ["adam", "sgd"])
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        if optimizer == "sgd":  # conditional: only exists for SGD, and it matters there
            momentum = trial.suggest_float("momentum", 0.0, 0.99)
            return -abs(momentum - 0.9) * 5 - abs(lr - 0.01)
        return -1.0 - abs(lr - 0.01)

    imp = importances(_study(objective))
    assert "momentum" in imp and imp["momentum"] > 0


def test_edge_of_range_warning():
    def at_the_edge(trial):
        return trial.suggest_float("lr", 1e-5, 1e-1, log=True) + 0 * trial.suggest_int("depth", 1, 8)

    warnings = edge_warnings(_study(at_the_edge))
    assert any(w.startswith("best lr") and "upper edge" in w for w in warnings)

    def in_the_middle(trial):
        return -abs(trial.suggest_float("x", 0.0, 1.0) - 0.5)

    assert edge_warnings(_study(in_the_middle)) == []


def test_report_says_at_what_size_the_networks_saw_the_stimuli():
    from analysis.report import input_resolution_note
    from trainables.study.records import TrialRecord

    stored = input_resolution_note(224, [TrialRecord("a", {"input_size": 0})])
    assert stored.startswith("Networks saw the stimuli at 224 px, the size stored in the data")
    resized = input_resolution_note(224, [TrialRecord("a", {"input_size": 0}), TrialRecord("b", {"input_size": 128}),
                                               TrialRecord("c", {"input_size": 160})])
    assert "resized to 128, 160 px" in resized and "the others at 224 px" in resized
    assert "badly" not in resized  # a chosen input size is not the handicap of small stored images
    small = input_resolution_note(64, [TrialRecord("a", {"input_size": 128})])
    assert "stored at 64 px" in small and "see small images badly" in small
