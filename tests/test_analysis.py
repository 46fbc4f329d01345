"""Export, report and compare on a small search made here (real Ray, Optuna, MLflow)."""

import json
import re

import optuna
import pytest
from PIL import Image

from analysis.report import edge_warnings, importances
from analysis import compare, export, report
from searchutil import mlflow_runs
from trainables import train


@pytest.mark.slow
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


@pytest.mark.slow
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
