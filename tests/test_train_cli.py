import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from searchutil import refused

from trainables import train

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY_FLAGS = ["--profile", "smoke", "--resolution", "32", "--images-per-object", "10", "--max-epochs", "3"]


def run_train(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "trainables.train", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def mlflow_client(storage):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")


@pytest.mark.slow
def test_train_end_to_end_writes_every_output(tmp_path):
    out = tmp_path / "train" / "shallow_cnn"
    done = run_train("--config", str(EXAMPLES / "shallow_cnn.json"), "--storage", str(tmp_path), *TINY_FLAGS)
    assert done.returncode == 0, done.stderr
    assert "validation EV" in done.stdout and "epoch   3/3" in done.stderr
    # MLflow's own lines (its database set-up, its caution about the pickle format chosen on purpose) stay quiet.
    assert not [line for line in done.stderr.splitlines() if " mlflow." in line], done.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["ev_per_site"]) == 168 and len(metrics["r_per_site"]) == 168
    assert 0 < metrics["noise_ceiling_ev"] < 1 and metrics["epochs_run"] == 3
    assert np.load(out / "predictions_val.npy").shape == (58, 168)
    assert np.load(out / "predictions_test.npy").shape == (64, 168)
    assert (out / "model.pt").stat().st_size > 0
    assert json.loads((out / "config.json").read_text())["epochs"] == 3
    for png in ("site_distributions", "rdm", "site_responses", "learning_curve"):
        with Image.open(out / f"{png}.png") as im:
            assert im.size[0] > 300

    # Tracked in MLflow: params, validation metrics, figures, and a model that loads back and predicts the same.
    import mlflow.pytorch
    import torch

    client = mlflow_client(tmp_path)
    run = client.get_run(metrics["mlflow"]["run_id"])
    assert run.data.params["backbone"] == "shallow_cnn" and run.data.params["epochs"] == "3"
    assert run.data.metrics["val_ev"] == pytest.approx(metrics["ev"])
    assert {"rdm.png", "metrics.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    model = mlflow.pytorch.load_model(metrics["mlflow"]["model_uri"])
    from trainables.data.datasets import load_synthetic
    from trainables.data.synthetic import SyntheticSpec

    data = load_synthetic(SyntheticSpec(resolution=32, images_per_object=10))
    with torch.no_grad():
        again = model(torch.from_numpy(data.stimulus_val)).numpy()
    np.testing.assert_allclose(again, np.load(out / "predictions_val.npy"), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_train_several_seeds_reports_spread(tmp_path, capsys):
    out = tmp_path / "seeds"
    assert train.main(["--config", str(EXAMPLES / "shallow_cnn.json"), "--out", str(out), "--seeds", "2",
                       "--no-mlflow", *TINY_FLAGS]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["seeds"] == [0, 1] and len(summary["ev_per_seed"]) == 2 and summary["ev_std"] > 0
    assert (out / "seed_1" / "predictions_val.npy").exists()
    # Per site: the seeds' mean in metrics.json, and a table beside it with each seed's and the mean, and EV / ceiling.
    seeds = [json.loads((out / f"seed_{s}" / "metrics.json").read_text()) for s in (0, 1)]
    np.testing.assert_allclose(summary["ev_per_site"], np.mean([m["ev_per_site"] for m in seeds], axis=0))
    with open(out / "sites.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 168 and {"site", "noise_ceiling_ev", "ev_mean", "ev_over_ceiling_mean", "r_mean", "ev_seed_0",
                                 "ev_seed_1", "r_seed_1"} <= set(rows[0])
    assert float(rows[5]["ev_seed_1"]) == pytest.approx(seeds[1]["ev_per_site"][5], abs=1e-6)
    ceiled = [float(r["ev_over_ceiling_mean"]) for r in rows if r["ev_over_ceiling_mean"]]
    assert all(float(r["noise_ceiling_ev"]) >= 0.1 for r in rows if r["ev_over_ceiling_mean"]) and ceiled
    with open(out / "seed_0" / "sites.csv") as f:
        assert {"site", "noise_ceiling_ev", "ev", "ev_over_ceiling", "r"} == set(next(csv.DictReader(f)))
    # The same config again into its folder is its own results: allowed (the epoch cap applied both times).
    assert train.main(["--config", str(EXAMPLES / "shallow_cnn.json"), "--out", str(out), "--seeds", "2",
                       "--no-mlflow", *TINY_FLAGS]) == 0
    # Training another config into the same folder is refused in one line, before any work.
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**json.loads((EXAMPLES / "shallow_cnn.json").read_text()), "lr": 0.5}))
    line = refused(train.main, ["--config", str(other), "--out", str(out), "--seeds", "2", "--no-mlflow",
                                *TINY_FLAGS], capsys)
    assert "holds the results of another config" in line and str(out / "seed_0") in line
