"""Ray Tune callbacks of a search, run in the driver: MLflow runs for trials, and checkpoint clean-up.

MLflow runs are created by one driver-side callback, nested under the search's
parent run by the ``mlflow.parentRunId`` tag, reused by trial id after
``Tuner.restore``, and only real metrics are logged (no pid, timestamps, config/*).
When a trial ends, :class:`CheckpointJanitor` removes its checkpoints (an ended
trial is never resumed), except the best completed trial's weights, kept once.
"""

from __future__ import annotations

import time
from pathlib import Path

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from ray import tune

from trainables.core.config import from_trial
from trainables.core.layout import OPTUNA_KEY, RECHECK_KEY, sampled_params
from trainables.study.checkpoints import remove_checkpoints
from trainables.study.searchers import epoch_of
from trainables.study.trial import EPOCH_METRICS
from trainables.study.tracking import mlflow_value


def epoch_metrics(result: dict, stamp: int) -> list[Metric]:
    """The MLflow metrics of one reported epoch, logged at the trial's own epoch as the step."""
    step = epoch_of(result)
    return [Metric(k, float(result[k]), stamp, step) for k in EPOCH_METRICS if result.get(k) is not None]


def finish_run(client: MlflowClient, run_id: str, status: str) -> None:
    """End a trial's run: ``status`` (completed / pruned / failed / interrupted) as its tag and MLflow's own state."""
    client.set_tag(run_id, "status", status)
    client.set_terminated(run_id, {"failed": "FAILED", "interrupted": "KILLED"}.get(status, "FINISHED"))


class MLflowTrials(tune.Callback):
    """One MLflow run per trial, nested under the search's parent run; logged from the driver only.

    Runs are found again by their ``trial_id`` tag, so a restored search reuses
    them instead of opening duplicates, and each ends FINISHED or FAILED with a
    ``status`` tag of completed / pruned / failed. A run found again continues its
    metric history after its last logged step: a trial resumed from an older
    checkpoint reports epochs again, and MLflow gets each step once.

    ``finished`` (a resumed study's): Optuna trial number -> status of the trials that
    ended before the interruption; their status comes from there, not from Ray's
    (possibly stale) last result.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, finished: dict | None = None):
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        self.finished = dict(finished or {})
        self._client = None
        self._runs: dict[str, str] = {}
        self._last_step: dict[str, int] = {}

    def __getstate__(self):  # the client holds connections; rebuild it after unpickling
        return {**self.__dict__, "_client": None, "_runs": {}, "_last_step": {}}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def run_id(self, trial) -> str:
        """The trial's run: cached, else found by tag, else created with the trial's whole config as params.

        The sampled hyperparameters are named in the ``sampled`` tag; every other param is
        a value the space fixed for this trial.
        """
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.trial_id = '{trial.trial_id}' and tags.`mlflow.parentRunId` = '{self.parent_run_id}'",
            max_results=1,
        )
        if found:
            run_id = found[0].info.run_id
            logged = self.client.get_metric_history(run_id, "inner_ev")
            self._last_step[run_id] = max((m.step for m in logged), default=0)
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"trial_{trial.trial_id}",
                tags={"mlflow.parentRunId": self.parent_run_id, "trial_id": trial.trial_id, "status": "running",
                      "sampled": ",".join(sorted(sampled_params(trial.config))),
                      **({"recheck_of": trial.config[RECHECK_KEY]} if RECHECK_KEY in trial.config else {})},
            )
            run_id = run.info.run_id
            params = [Param(k, mlflow_value(v)) for k, v in sorted(from_trial(trial.config).items())]
            self.client.log_batch(run_id, params=params)
        self._runs[trial.trial_id] = run_id
        return run_id

    def on_trial_start(self, iteration, trials, trial, **info):
        self.run_id(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        step = epoch_of(result)
        run_id = self.run_id(trial)
        if step <= self._last_step.get(run_id, 0):  # logged before the study was interrupted
            return
        self._last_step[run_id] = step
        self.client.log_batch(run_id, metrics=epoch_metrics(result, int(time.time() * 1000)))

    def on_trial_complete(self, iteration, trials, trial, **info):
        status = self.finished.get(trial.config.get(OPTUNA_KEY))
        if status is None:
            status = "completed" if (trial.last_result or {}).get("fit_done") else "pruned"
        self._finish(trial, status)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, "failed")

    def _finish(self, trial, status: str) -> None:
        run_id = self.run_id(trial)
        node = (trial.last_result or {}).get("node_id")
        if node:
            self.client.set_tag(run_id, "node_id", node)
        finish_run(self.client, run_id, status)


class CheckpointJanitor(tune.Callback):
    """Removes an ended trial's checkpoints; keeps the best completed trial's weights, once per group.

    A completed trial's last checkpoint holds its best weights alone; it stays while
    that trial is the best completed one of its group and goes when a better one
    completes. Groups are the values of the config key ``group_by`` (the re-check keeps
    one per re-checked config); none: one group. Pruned and failed trials are never
    resumed, so nothing of theirs is kept.
    """

    def __init__(self, metric: str, group_by: str | None = None, finished: dict | None = None):
        self.metric, self.group_by = metric, group_by
        self.finished = set(finished or ())  # a resumed study's trials that ended before: left as they are
        self.best: dict = {}

    def on_trial_complete(self, iteration, trials, trial, **info):
        if trial.config.get(OPTUNA_KEY) in self.finished:
            return
        result = trial.last_result or {}
        value = result.get(self.metric)
        if not result.get("fit_done") or value is None:
            remove_checkpoints(Path(trial.path))
            return
        group = trial.config.get(self.group_by) if self.group_by else None
        best = self.best.get(group)
        if best is None or value > best[0]:
            if best is not None:
                remove_checkpoints(Path(best[1]))
            self.best[group] = (value, trial.path)
            remove_checkpoints(Path(trial.path), keep_last=True)
        else:
            remove_checkpoints(Path(trial.path))

    def on_trial_error(self, iteration, trials, trial, **info):
        remove_checkpoints(Path(trial.path))
