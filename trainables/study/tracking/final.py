"""MLflow runs of final trainings (``trainables.train``): one run per trained model, a parent run per ``--seeds N``.

A final training logs the config as params, the official-validation scores as
metrics, the output folder's figures and files as artifacts, and a network with
MLflow's PyTorch flavour so that ``mlflow.pytorch.load_model`` gives it back; a
config exported by a search is tagged with the search and trial it came from.
"""

from __future__ import annotations

import time
from pathlib import Path

import mlflow
import torch
from mlflow.entities import DatasetInput, Metric, Param
from mlflow.tracking import MlflowClient

from trainables.study.tracking.store import experiment_id, mlflow_value, tracking_client

SCORES = ("ev", "r_mean", "r_median", "r2", "noise_ceiling_ev", "ev_normalized", "inner_ev")


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
                       provenance: dict | None = None, parent_run_id: str | None = None,
                       dataset: DatasetInput | None = None, experiment: str | None = None,
                       tags: dict | None = None) -> dict:
    """Log one trained model (``dataset``: the data it was fitted and scored on,
    :func:`~trainables.study.tracking.store.data_input`) to ``experiment`` (default: the study its config came from,
    else ``final_training``), with ``tags`` besides its own; return ``{"run_id", "model_uri"}`` (model_uri None for
    ridge readouts)."""

    provenance = provenance or {}
    client = tracking_client(tracking_uri)
    exp = experiment_id(client, experiment or provenance.get("experiment") or "final_training", tracking_uri)
    extra = dict(tags or {})
    tags = {"kind": "final_training", "output": str(Path(out).resolve()), **extra}
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
    if dataset is not None:
        client.log_inputs(run_id, datasets=[dataset])
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
