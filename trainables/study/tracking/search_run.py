"""A search's MLflow parent run, and the ends of its trials' runs.

A search has one parent run (params: space, sampler, scheduler, profile, seed,
data fingerprint; tags: git commit and library versions; artifacts: best config
and trials table); its trials are nested under it by
:class:`trainables.study.tracking.callbacks.MLflowTrials`.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from mlflow.entities import DatasetInput, Param
from mlflow.tracking import MlflowClient

from trainables.study.plan.search_plan import SearchPlan, TrackingPlan
from trainables.study.tracking.store import experiment_id, mlflow_value, tracking_client


def running_trial_runs(client: MlflowClient, tracking: TrackingPlan) -> list:
    """The study's MLflow trial runs still RUNNING."""
    return [run for run in client.search_runs([tracking.experiment_id], max_results=10000,
                                              filter_string="attributes.status = 'RUNNING' and "
                                                            f"tags.`mlflow.parentRunId` = '{tracking.parent_run_id}'")
            if "trial_id" in run.data.tags]


def end_runs(tracking_uri: str, tracking: TrackingPlan, trial_ids: set[str] | None = None) -> None:
    """End the study's RUNNING MLflow trial runs of ``trial_ids`` (all when None) as KILLED, status ``interrupted``."""
    client = MlflowClient(tracking_uri)
    for run in running_trial_runs(client, tracking):
        if trial_ids is None or run.data.tags["trial_id"] in trial_ids:
            finish_run(client, run.info.run_id, "interrupted")


def finish_run(client: MlflowClient, run_id: str, status: str) -> None:
    """End a trial's run: ``status`` (completed / pruned / failed / interrupted) as its tag and MLflow's own state."""
    client.set_tag(run_id, "status", status)
    client.set_terminated(run_id, {"failed": "FAILED", "interrupted": "KILLED"}.get(status, "FINISHED"))


def start_search_run(plan: SearchPlan, tracking_uri: str, dataset: DatasetInput | None = None) -> tuple[str, str]:
    """Create the search's parent run (``dataset``: the data it searches on, :func:`~.store.data_input`); returns
    its experiment id and run id."""

    client = tracking_client(tracking_uri)
    exp = experiment_id(client, plan.name, tracking_uri)
    # From the installed packages' metadata: importing Ray here would read its environment too early.
    versions = {"ray_version": version("ray"), "optuna_version": version("optuna"), "torch_version": version("torch")}
    run = client.create_run(exp, run_name=f"search_{plan.name}",
                            tags={"git_commit": plan.git_commit, "kind": "search", **versions})
    params = {"space": plan.space, "sampler": plan.sampler, "scheduler": plan.scheduler.name,
              "profile": plan.profile, "seed": plan.seed, "data": plan.data.source,
              "data_fingerprint": plan.data_fingerprint, "num_samples": plan.num_samples,
              # What the space was told it can run: the profile's epoch cap, the loadable ImageNet weights.
              "epoch_cap": plan.max_epochs, "imagenet_backbones": ",".join(plan.pretrained)}
    client.log_batch(run.info.run_id, params=[Param(k, mlflow_value(v)) for k, v in params.items()])
    if dataset is not None:
        client.log_inputs(run.info.run_id, datasets=[dataset])
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
