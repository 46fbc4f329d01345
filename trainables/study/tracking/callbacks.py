"""The Ray Tune callback that gives each trial of a search its MLflow run, from the driver.

MLflow runs are created by one driver-side callback, nested under the search's
parent run by the ``mlflow.parentRunId`` tag, reused by trial id after
``Tuner.restore``, and only real metrics are logged (no pid, timestamps, config/*).
"""

from __future__ import annotations

import time

from mlflow.entities import DatasetInput, Metric, Param
from mlflow.tracking import MlflowClient
from ray import tune

from trainables.core.layout import OPTUNA_KEY, RECHECK_KEY, sampled_params
from trainables.fitting.families import config_of
from trainables.study.result import EPOCH_METRICS, NODE_ID, ended_status, epoch_of
from trainables.study.tracking.search_run import finish_run
from trainables.study.tracking.store import mlflow_value


def result_metrics(result: dict, stamp: int, names: tuple = EPOCH_METRICS) -> list[Metric]:
    """The MLflow metrics of one reported epoch (``names``: those the study's families report), logged at the
    trial's own epoch as the step."""
    step = epoch_of(result)
    return [Metric(k, float(result[k]), stamp, step) for k in names if result.get(k) is not None]


class MLflowTrials(tune.Callback):
    """One MLflow run per trial, nested under the search's parent run; logged from the driver only.

    Runs are found again by their ``trial_id`` tag, so a restored search reuses
    them instead of opening duplicates, and each ends FINISHED or FAILED with a
    ``status`` tag of completed / pruned / failed. A run found again continues its
    metric history after its last logged step: a trial resumed from an older
    checkpoint reports epochs again, and MLflow gets each step once.

    ``dataset`` (:func:`~trainables.study.tracking.store.data_input`): the data each run saw, for the Runs table's
    Dataset column. ``metrics``: the per-epoch metrics logged (every trial's and the study's families' own,
    :func:`trainables.fitting.families.epoch_metrics`). ``ended_before`` (a resumed study's):
    Optuna trial number -> status of the trials that ended before this run; their status
    comes from there, not from Ray's (possibly stale) last result.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, metrics: tuple = EPOCH_METRICS,
                 ended_before: dict | None = None, dataset: DatasetInput | None = None):
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        self.dataset = dataset
        self.metrics = tuple(metrics)
        self.ended_before = dict(ended_before or {})
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
            params = [Param(k, mlflow_value(v)) for k, v in sorted(config_of(trial.config).items())]
            self.client.log_batch(run_id, params=params)
            if self.dataset is not None:
                self.client.log_inputs(run_id, datasets=[self.dataset])
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
        self.client.log_batch(run_id, metrics=result_metrics(result, int(time.time() * 1000), self.metrics))

    def on_trial_complete(self, iteration, trials, trial, **info):
        status = self.ended_before.get(trial.config.get(OPTUNA_KEY))
        self._finish(trial, status or ended_status(trial.last_result, error=False))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, ended_status(trial.last_result, error=True))

    def _finish(self, trial, status: str) -> None:
        run_id = self.run_id(trial)
        node = (trial.last_result or {}).get(NODE_ID)
        if node:
            self.client.set_tag(run_id, "node_id", node)
        finish_run(self.client, run_id, status)
