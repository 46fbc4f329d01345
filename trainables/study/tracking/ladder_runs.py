"""The ladder in MLflow, from the driver: one parent run, a child per rung, and a run per final training under it.

Runs are found again by their tags (the parent by ``kind`` = ``ladder`` and the data's
fingerprint, a rung by ``rung``, a final training by its folder, ``output``), so that a
ladder started again logs each final training once and adds to the same runs.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from mlflow.entities import DatasetInput, Metric
from mlflow.tracking import MlflowClient
from ray import tune

from trainables.core.layout import CONFIG_FILE, METRICS_FILE
from trainables.study.result import NODE_ID
from trainables.study.tracking.final import log_final_training
from trainables.study.tracking.store import experiment_id, save_runs_view, tracking_client

EXPERIMENT = "ladder"


def _found(client: MlflowClient, experiment: str, tags: dict) -> str | None:
    query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = client.search_runs([experiment], filter_string=query, max_results=1)
    return runs[0].info.run_id if runs else None


class LadderRuns:
    """The ladder's runs in the tracking store at ``tracking_uri``: its parent run (made or found again) and, as they
    are asked for, a child run per rung."""

    def __init__(self, tracking_uri: str, fingerprint: str, dataset: DatasetInput | None = None):
        self.tracking_uri, self.dataset = tracking_uri, dataset
        self._client: MlflowClient | None = tracking_client(tracking_uri)
        self.experiment = experiment_id(self.client, EXPERIMENT, tracking_uri)
        tags = {"kind": "ladder", "data_fingerprint": fingerprint}
        self.parent = _found(self.client, self.experiment, tags) or self.client.create_run(
            self.experiment, run_name="ladder", tags=tags).info.run_id
        if dataset is not None and not self.client.get_run(self.parent).inputs.dataset_inputs:
            self.client.log_inputs(self.parent, datasets=[dataset])
        self.rungs: dict[str, str] = {}
        save_runs_view(self.client, self.experiment, "val_ev", ())  # the printed URL opens the rows best first

    def __getstate__(self):  # Ray pickles its callbacks; the client holds connections
        return {**self.__dict__, "_client": None}

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def rung(self, row: str, label: str) -> str:
        """The child run of the rung ``row`` (``<study>/<rung>``), made or found again."""
        if row not in self.rungs:
            tags = {"mlflow.parentRunId": self.parent, "rung": row}
            self.rungs[row] = _found(self.client, self.experiment, tags) or self.client.create_run(
                self.experiment, run_name=label, tags={**tags, "kind": "ladder_rung"}).info.run_id
        return self.rungs[row]

    def log_training(self, row: str, label: str, out: Path, node_id: str = "") -> str | None:
        """Log the final training in folder ``out`` under its rung's run, once, tagged with the Ray node it ran on when
        known; its run id (None when the folder holds no finished training)."""
        out = Path(out)
        found = _found(self.client, self.experiment, {"output": str(out.resolve())})
        if found:
            return found
        try:
            metrics = json.loads((out / METRICS_FILE).read_text())
            config = json.loads((out / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            return None
        logged = log_final_training(self.tracking_uri, config, metrics, out, provenance=metrics.get("provenance"),
                                    parent_run_id=self.rung(row, label), dataset=self.dataset, experiment=EXPERIMENT,
                                    tags={"rung": row, "seed": str(config.get("seed")),
                                          **({NODE_ID: node_id} if node_id else {})})
        return logged["run_id"]

    def log_metrics(self, run_id: str, values: dict) -> None:
        """Metrics of a rung's (or the parent's) run: the ladder's statistics once every training ended."""
        stamp = int(time.time() * 1000)  # a later ladder's values are the latest (MLflow orders by step, then time)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in values.items()
                                               if v is not None and math.isfinite(v)])

    def close(self, finished: bool = True) -> None:
        """End the rung runs and the parent run: FINISHED, or KILLED when the ladder stopped before its answer."""
        for run_id in (*self.rungs.values(), self.parent):
            self.client.set_terminated(run_id, "FINISHED" if finished else "KILLED")


class LogFinals(tune.Callback):
    """A Ray Tune callback that logs each final training to MLflow as it ends (a ladder killed later keeps it).

    ``rows``: the runs' row -> label; ``out_key``, ``row_key``: the keys of a final run's Ray config that name its
    folder and its row.
    """

    def __init__(self, runs: LadderRuns, rows: dict[str, str], out_key: str, row_key: str):
        self.runs, self.rows, self.out_key, self.row_key = runs, rows, out_key, row_key

    def on_trial_complete(self, iteration, trials, trial, **info):
        row = trial.config[self.row_key]
        self.runs.log_training(row, self.rows.get(row, row), Path(trial.config[self.out_key]),
                               (trial.last_result or {}).get(NODE_ID, ""))
