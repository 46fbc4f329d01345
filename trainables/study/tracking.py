"""MLflow tracking from the driver: a search's parent run, and one run per final training.

A search has one parent run (params: space, searcher, scheduler, profile, seed,
data fingerprint; tags: git commit and library versions; artifacts: best config
and trials table); its trials are nested under it by
:class:`trainables.study.callbacks.MLflowTrials`.

Final training (``trainables.train``) logs the config as params, the
official-validation scores as metrics, the output folder's figures and files as
artifacts, and a network with MLflow's PyTorch flavour so that
``mlflow.pytorch.load_model`` gives it back; a config exported by a search is
tagged with the search and trial it came from.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from importlib.metadata import version
from pathlib import Path

import mlflow
import torch
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from trainables.core.layout import ARTIFACTS_DIR, EMPTY_MLFLOW_DB, cache_dir
from trainables.study.plan import SearchPlan

log = logging.getLogger(__name__)
SCORES = ("ev", "r_mean", "r_median", "r2", "noise_ceiling_ev", "ev_normalized", "inner_ev")


def mlflow_value(value) -> str:
    """A config value as an MLflow param: strings as they are, anything else as JSON (``null``, ``[7000, 7000]``)."""
    return value if isinstance(value, str) else json.dumps(value)


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (relative to the current folder unless absolute), else
    None."""
    return Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None


def tracking_client(tracking_uri: str) -> MlflowClient:
    """An MLflow client for a store that may not exist yet; a new SQLite store starts as a copy of an empty one.

    MLflow builds a new SQLite database by replaying each of its schema migrations, seconds of CPU per study; the
    empty database it builds is kept in the cache folder (one per MLflow version) and copied from then on.
    """
    path = sqlite_path(tracking_uri)
    if path is not None and "?" not in tracking_uri and not path.exists():
        empty = cache_dir() / EMPTY_MLFLOW_DB.format(version=mlflow.__version__)
        if not empty.is_file():
            empty.parent.mkdir(parents=True, exist_ok=True)
            building = empty.with_name(f".{empty.name}.{os.getpid()}")
            building.unlink(missing_ok=True)
            MlflowClient(f"sqlite:///{building.resolve()}").search_experiments()  # MLflow creates its tables
            os.replace(building, empty)  # whole or not at all, when two searches start at once
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(empty, path)
    return MlflowClient(tracking_uri)


# MLflow 3 opens an experiment in its GenAI view (traces, sessions) unless it says it holds model training.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def experiment_id(client, name: str, tracking_uri: str) -> str:
    """The experiment called ``name``, created (with a local artifact folder for SQLite stores) when missing,
    and tagged as model training so that the MLflow UI opens on its runs table."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.tags.get("mlflow.experimentKind") != EXPERIMENT_KIND["mlflow.experimentKind"]:
            for key, value in EXPERIMENT_KIND.items():
                client.set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id
    location, db = None, sqlite_path(tracking_uri)
    if db is not None:
        # Without an explicit location, artifacts land relative to the current directory.
        location = (db.resolve().parent / ARTIFACTS_DIR).as_uri()
    return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)


def start_search_run(plan: SearchPlan, tracking_uri: str) -> tuple[str, str]:
    """Create the search's parent run; returns its experiment id and run id."""

    client = tracking_client(tracking_uri)
    exp = experiment_id(client, plan.name, tracking_uri)
    # From the installed packages' metadata: importing Ray here would read its environment too early.
    versions = {"ray_version": version("ray"), "optuna_version": version("optuna"), "torch_version": version("torch")}
    run = client.create_run(exp, run_name=f"search_{plan.name}",
                            tags={"git_commit": plan.git_commit, "kind": "search", **versions})
    params = {"space": plan.space, "searcher": plan.searcher, "scheduler": plan.scheduler.name,
              "profile": plan.profile, "seed": plan.seed, "data": plan.data.source,
              "data_fingerprint": plan.data_fingerprint, "num_samples": plan.num_samples,
              # What the space was told it can run: the profile's epoch cap, the loadable ImageNet weights.
              "epoch_cap": plan.max_epochs, "imagenet_backbones": ",".join(plan.pretrained)}
    client.log_batch(run.info.run_id, params=[Param(k, mlflow_value(v)) for k, v in params.items()])
    return exp, run.info.run_id


def close_search_run(tracking_uri: str, run_id: str, counts: dict, best: dict | None, best_path: str | None,
                     trials_table: Path, references: dict, complete: bool) -> None:
    """Attach the best config and trials table, log the best score, the ideal observers' scores and the trial
    counts; end the run if the study is complete."""

    client = MlflowClient(tracking_uri)
    if best_path:
        client.log_artifact(run_id, best_path)
        client.log_metric(run_id, "best_inner_ev", best["provenance"]["value"])
        # Tags, not params: a resumed search may find a better trial and must be able to say so.
        client.set_tag(run_id, "best_trial_id", best["provenance"]["trial_id"])
        for key, value in best["provenance"].get("sampled", {}).items():
            client.set_tag(run_id, f"best.{key}", mlflow_value(value))
        recheck = best["provenance"].get("recheck")
        if recheck:  # the exported config's mean over its re-check seeds, and whether the runner-up ties it
            top = recheck["table"][0]
            client.log_metric(run_id, "best_recheck_mean", top["mean"])
            client.log_metric(run_id, "best_recheck_se", top["se"])
            client.set_tag(run_id, "recheck_tie", str(recheck["tie"]).lower())
    for name, ev in references.items():  # labels-only scores on the trials' inner split
        client.log_metric(run_id, f"reference.{name.replace(' ', '_')}_inner_ev", ev)
    client.log_artifact(run_id, str(trials_table))
    for status, n in counts.items():
        client.log_metric(run_id, f"trials_{status}", n)
    if complete:
        client.set_terminated(run_id, "FINISHED")


def relocate_artifacts(tracking_uri: str, experiment: str) -> str | None:
    """A study moved with its ``mlflow.db``: point the experiment's artifact store, and its runs', at the
    ``mlartifacts`` beside the database, where it now lies; returns the old location when it moved.

    MLflow keeps absolute artifact locations in the database and offers no call to change them, so the two
    columns are rewritten in the SQLite file itself (only a ``sqlite:///`` store beside the study is touched).
    """
    db = sqlite_path(tracking_uri)
    here = (db.resolve().parent / ARTIFACTS_DIR).as_uri()
    with sqlite3.connect(db) as con:
        row = con.execute("select artifact_location from experiments where experiment_id = ?", (experiment,)).fetchone()
        if row is None or row[0] == here:
            return None
        old = row[0]
        con.execute("update experiments set artifact_location = ? where experiment_id = ?", (here, experiment))
        con.execute("update runs set artifact_uri = ? || substr(artifact_uri, ?) where experiment_id = ? and "
                    "artifact_uri like ? || '%'", (here, len(old) + 1, experiment, old))
    return old


def start_seeds_run(tracking_uri: str, out: Path, n_seeds: int, provenance: dict) -> str:
    """A parent run for ``--seeds N``: each seed's run is nested under it; returns its id."""

    client = tracking_client(tracking_uri)
    exp = experiment_id(client, provenance.get("experiment") or "final_training", tracking_uri)
    run = client.create_run(exp, run_name=f"train_{Path(out).name}_{n_seeds}seeds",
                            tags={"kind": "final_training_seeds"})
    return run.info.run_id


def close_seeds_run(tracking_uri: str, run_id: str, summary: dict) -> None:
    """Log the mean and spread over seeds to the parent run and end it."""

    client = MlflowClient(tracking_uri)
    for key in ("ev", "ev_std", "r_mean", "r_mean_std", "inner_ev", "inner_ev_std"):
        if key in summary:
            client.log_metric(run_id, f"val_{key}", summary[key])
    client.set_terminated(run_id, "FINISHED")


def log_final_training(tracking_uri: str, config: dict, metrics: dict, out: Path, model=None,
                       provenance: dict | None = None, parent_run_id: str | None = None) -> dict:
    """Log one trained model; return ``{"run_id", "model_uri"}`` (model_uri None for ridge readouts)."""

    provenance = provenance or {}
    client = tracking_client(tracking_uri)
    exp = experiment_id(client, provenance.get("experiment") or "final_training", tracking_uri)
    tags = {"kind": "final_training", "output": str(Path(out).resolve())}
    if provenance:
        tags.update({"search": str(provenance.get("experiment")), "search_trial_id": str(provenance.get("trial_id")),
                     "search_value": str(provenance.get("value"))})
        if provenance.get("parent_run_id"):
            tags["search_run_id"] = provenance["parent_run_id"]
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(exp, run_name=f"train_{Path(out).name}", tags=tags)
    run_id = run.info.run_id

    params = [Param(k, mlflow_value(v)) for k, v in sorted(config.items())]
    stamp = int(time.time() * 1000)
    scores = [Metric(f"val_{k}", float(metrics[k]), stamp, 0) for k in SCORES if metrics.get(k) is not None]
    client.log_batch(run_id, params=params, metrics=scores)
    for path in sorted(Path(out).iterdir()):
        if path.suffix in (".png", ".json", ".npy"):
            client.log_artifact(run_id, str(path))
    model_uri = None
    if model is not None:
        mlflow.set_tracking_uri(tracking_uri)
        with mlflow.start_run(run_id=run_id):
            # Pickle format: the traced 'pt2' default needs an example and cannot trace every backbone.
            # Explicit requirements: inferring them imports the model in a subprocess (slow).
            info = mlflow.pytorch.log_model(model.cpu().eval(), name="model", serialization_format="pickle",
                                            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"])
        model_uri = info.model_uri
    client.set_terminated(run_id, "FINISHED")
    return {"run_id": run_id, "model_uri": model_uri}
