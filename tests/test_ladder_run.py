"""The ladder end to end, on two small studies run beforehand on its data: final trainings on Ray, the answer's files,
MLflow's runs, and a second start that trains nothing."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from searchutil import TINY, documented_tree, pattern, run_search

pytestmark = pytest.mark.slow
LADDER = [sys.executable, "-m", "trainables.ladder", "--studies", "ridge_pixels,shallow_cnn", "--seeds", "2",
          "--max-epochs", "2", *TINY]


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    storage = tmp_path_factory.mktemp("ladder") / "runs"
    for args in (["--space", "ridge_pixels", "--num-samples", "4"],
                 ["--space", "shallow_cnn", "--num-samples", "2", "--max-epochs", "2", "--recheck-top", "2",
                  "--recheck-seeds", "2"]):
        done = run_search(*args, "--storage", str(storage), *TINY)
        assert done.returncode == 0, done.stderr[-3000:]
    return storage


def test_the_ladder_trains_every_row_over_seeds_and_writes_the_answer(studies):
    done = subprocess.run([*LADDER, "--storage", str(studies)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = studies / "ladder"
    with open(out / "table.csv") as f:
        rows = list(csv.DictReader(f))
    models = [r for r in rows if r["kind"] == "model"]
    # 4 pixel rows (ridge_pixels ran its first 4 points), the shallow CNN's best config; its 2 seeds averaged, and
    # its 2 re-checked configs x 2 seeds averaged; then the scale: the ideal observers and the noise ceiling.
    assert len(models) == 5 and len([r for r in rows if r["kind"] != "reference"]) == 7, [r["row"] for r in rows]
    assert {r["row"] for r in rows if r["kind"] == "reference"} >= {"object ideal observer", "category ideal observer"}
    shallow = next(r for r in models if r["study"] == "shallow_cnn")
    assert shallow["seeds"] == "0 1" and shallow["source"] == "re-check"  # the seeds it trained with
    assert "Table 1" in done.stdout and "for scale: object ideal observer" in done.stdout
    assert "final trainings: 8 runs ended in" in done.stderr  # the phase's end, as benchmarks/ladder_busy.py reads it
    # The report's ordering: of its levels, this ladder has the pixels and the shallow CNN: one step.
    assert "the report's ordering" in done.stdout and "pixels (" in done.stdout
    with open(out / "steps.csv") as f:
        assert [(s["lower level"], s["upper level"]) for s in csv.DictReader(f)] == [("pixels", "shallow CNN")]
    for name in ("table.md", "sites.csv", "sites.png", "rdms.png", "index.html"):
        assert (out / name).is_file(), name
    page = (out / "index.html").read_text()
    assert page.count("<figure") >= 2 and "<figcaption" in page
    runs = sorted(out.glob("runs/*/*/seed_*/metrics.json"))
    assert len(runs) == 4 + 2 + 2  # a readout trains once; the networks' rows and the ensemble's configs twice
    for metrics in runs:
        folder = metrics.parent
        assert {"config.json", "sites.csv", "predictions_val.npy"} <= {p.name for p in folder.iterdir()}
        assert json.loads(metrics.read_text())["data_fingerprint"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{studies / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ladder").experiment_id
    found = client.search_runs([experiment], max_results=100)
    parents = [r for r in found if r.data.tags.get("kind") == "ladder"]
    rungs = [r for r in found if r.data.tags.get("kind") == "ladder_rung"]
    trainings = [r for r in found if r.data.tags.get("kind") == "final_training"]
    assert len(parents) == 1 and len(trainings) == 8 and len(rungs) == 5 + 1
    assert {r.data.tags["mlflow.parentRunId"] for r in rungs} == {parents[0].info.run_id}
    assert {r.data.tags["mlflow.parentRunId"] for r in trainings} <= {r.info.run_id for r in rungs}
    assert all("val_ev" in r.data.metrics for r in rungs if r.data.tags["rung"].startswith("ridge"))
    nodes = {r.data.tags.get("node_id") for r in trainings}
    assert len(nodes) == 1 and None not in nodes  # each training tagged with its Ray node: here the one machine's

    # Every file the ladder writes is in docs/architecture.md's tree (Ray's own folder apart).
    patterns = [pattern(p) for p in documented_tree()]
    written = [str(p.relative_to(studies)) + ("/" if p.is_dir() else "") for p in out.rglob("*")
               if not str(p.relative_to(out)).startswith("ray/")]
    assert not [p for p in written if not any(pat.match(p) for pat in patterns)]

    again = subprocess.run([*LADDER, "--storage", str(studies)], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(0 trained, 8 done before)" in again.stdout
    assert len(client.search_runs([experiment], filter_string="tags.kind = 'final_training'", max_results=100)) == 8
