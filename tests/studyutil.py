"""A small study written file by file as a search leaves it, without Ray: for the tests that read studies from disk.

The study (``shallow_cnn``, 3 trials: two completed, one interrupted) has its plan, its Optuna study, its trials'
folders, an MLflow store with its parent run and Ray's saved state; beside it in the storage folder lie two final
trainings, a recordings file in the schema (``data.h5``) and a config file (``config.json``).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import optuna

from trainables.core.layout import OPTUNA_KEY, SAMPLED_KEY, optuna_url
from trainables.core.metrics import object_sums
from trainables.data.schema import load_h5, write_h5
from trainables.fitting.families import complete
from trainables.study.plan.search_plan import (DataPlan, RecheckPlan, ResourcePlan, SchedulerPlan, SearchPlan,
                                               TrackingPlan, write_plan)
from trainables.study.tracking.store import experiment_id, tracking_client

NAME = "shallow_cnn"
STATE = "2026-12-07_00-00-00"
# The fingerprint the study and its config claim for their data, which are not the recordings file's: a command that
# reads every file undamaged stops at the data, in one line, before it takes a lock, starts Ray or trains.
READ_THROUGH = "not-these-data"


def build_study(storage: Path, states: tuple[str, ...] = ("COMPLETE", "COMPLETE", "RUNNING"),
                finished: bool = False, on_its_data: bool = False) -> Path:
    """Write the study, and what lies beside it, into ``storage``; return ``storage``.

    ``states``: its trials' Optuna states (COMPLETE, PRUNED or RUNNING); ``finished``: whether its plan says the
    search ended; ``on_its_data``: its plan names the recordings file's fingerprint, not :data:`READ_THROUGH`.
    """
    folder = storage / NAME
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    objects = np.repeat([f"cat{c}_{k}".encode() for c in range(2) for k in range(3)], 4)
    arrays = {f"stimulus_{p}": rng.normal(size=(24, 3, 16, 16)).astype(np.float32) for p in ("train", "val", "test")}
    arrays.update({f"spikes_{p}": rng.normal(size=(24, 5)).astype(np.float32) for p in ("train", "val")})
    arrays.update({f"object_{p}": objects for p in ("train", "val", "test")})
    write_h5(arrays, storage / "data.h5")
    uri = f"sqlite:///{storage / 'mlflow.db'}"
    client = tracking_client(uri)
    experiment = experiment_id(client, NAME, uri)
    parent = client.create_run(experiment, tags={"kind": "search"}).info.run_id
    # Its data: the recordings file beside it, under another fingerprint than the file's (READ_THROUGH).
    plan = SearchPlan(name=NAME, space=NAME, scientific="width_mult", sampler="qmc", seed=0, num_samples=4,
                      scheduler=SchedulerPlan("asha", 2, 3.0, 4), recheck=RecheckPlan(2, 2),
                      resources=ResourcePlan(1.0, 0.0), data=DataPlan(str(storage / "data.h5"), 0, 16, 4),
                      profile="smoke", max_epochs=4, tracking=TrackingPlan(None, experiment, parent),
                      data_fingerprint=load_h5(storage / "data.h5").fingerprint if on_its_data else READ_THROUGH,
                      image_size=16, references={"object ideal observer": 0.05}, finished=finished)
    write_plan(plan, folder)
    study = optuna.create_study(study_name=NAME, storage=optuna_url(folder), direction="maximize")
    trial_data = []
    for n, state in enumerate(states):
        trial = study.ask()
        width = trial.suggest_float("width_mult", 0.5, 2.0)
        config = complete({"backbone": "shallow_cnn", "width_mult": width, "epochs": 4})
        trial.set_user_attr("config", config)
        results = [{"epoch": e, "training_iteration": e, "trial_id": f"t{n}", "inner_ev": 0.1 * e + 0.01 * n,
                    "inner_r": 0.3, "best_inner_ev": 0.1 * e + 0.01 * n, "time_this_iter_s": 1.0,
                    "time_total_s": float(e), "timestamp": 1_700_000_000 + e, "fit_done": int(e == 3)}
                   for e in range(1, 4 if state == "COMPLETE" else 2)]
        for row in results:
            trial.report(row["best_inner_ev"], row["epoch"])
        if state == "COMPLETE":
            study.tell(trial, results[-1]["best_inner_ev"])
        elif state == "PRUNED":
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        params = {"width_mult": width, **config, SAMPLED_KEY: ["width_mult"], OPTUNA_KEY: trial.number}
        trial_folder = folder / f"trial_t{n}"
        trial_folder.mkdir()
        (trial_folder / "params.json").write_text(json.dumps(params))
        (trial_folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in results))
        y = rng.normal(size=(12, 5))
        np.savez(trial_folder / "inner_sums.npz", **object_sums(y, y + rng.normal(size=y.shape), objects[:12].astype(str)))
        trial_data.append([json.dumps({"trial_id": f"t{n}", "config": params, "status": "TERMINATED"}), "{}"])
    (folder / f"experiment_state-{STATE}.json").write_text(json.dumps({"trial_data": trial_data}))
    for name in ("tuner.pkl", f"searcher-state-{STATE}.pkl", f"search_gen_state-{STATE}.json"):
        (folder / name).write_bytes(pickle.dumps({"saved": name, "counter": 3}))
    # A config exported from other data: a final training that reads every file undamaged stops at the data.
    best = {**complete({"backbone": "shallow_cnn", "epochs": 1}),
            "provenance": {"experiment": NAME, "data_fingerprint": READ_THROUGH}}
    (storage / "config.json").write_text(json.dumps(best))
    for run, ev in (("shallow_cnn", 0.12), ("other", -0.05)):
        (storage / "train" / run).mkdir(parents=True)
        (storage / "train" / run / "metrics.json").write_text(json.dumps({
            "ev": ev, "r_mean": 0.3, "r_median": 0.31, "seed": 0, "data_fingerprint": "synthetic-0",
            "references": {"object ideal observer": 0.05}, "provenance": {"experiment": NAME, "value": 0.3}}))
    return storage
