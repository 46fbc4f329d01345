"""Everything that touches Ray Tune: the trial function, the Optuna searcher and the MLflow callback.

The training core (:mod:`trainables.fitting.loop`) knows nothing of Ray; this module adapts
it. Known pitfalls of ray 2.60 / optuna 5 / mlflow 3 handled here (DESIGN.md §5):

- trials that ASHA stops reach Optuna as COMPLETE with a truncated value; they
  are told PRUNED here (a trial is complete only when its own fit finished);
- trials that raise after reporting reach Optuna as COMPLETE; they are told FAIL;
- MLflow runs are created by one driver-side callback, nested under the search's
  parent run by the ``mlflow.parentRunId`` tag, reused by trial id after
  ``Tuner.restore``, and only real metrics are logged (no pid, timestamps, config/*).

Checkpoints (DESIGN.md §6: at report scale one save of a ResNet-34 with the
7000-7000 head, Adam state and best weights is about 1.2 GB, and an epoch about a
second of GPU time): a trial saves a resumable checkpoint only when
``checkpoint_interval`` seconds have passed since its last one, and never so often
that saving takes more than a tenth of its time (:mod:`trainables.study.checkpoints`). A completed
trial ends with its best weights alone (no optimiser state). When a trial ends,
:class:`CheckpointJanitor` removes its checkpoints (an ended trial is never
resumed), except the best completed trial's weights, kept once.
"""

from __future__ import annotations

import logging
import os
import resource
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import optuna
import ray
import torch
from ray import tune
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from trainables.study.records import RECHECK_KEY
from trainables.study.checkpoints import BEST_WEIGHTS_FILE, STATE_FILE, CheckpointPolicy, remove_checkpoints
from trainables.core.config import from_trial
from trainables.fitting.loop import fit
from trainables.study.tracking import mlflow_value

log = logging.getLogger(__name__)

# Per-epoch values that go to MLflow and the trials table.
EPOCH_METRICS = ("train_loss", "inner_ev", "inner_r", "best_inner_ev", "lr", "epoch_seconds", "images_per_s", "alpha",
                 "checkpoint_seconds", "peak_rss_gib", "peak_gpu_gib")
# Keys the searcher adds to a trial's config besides the hyperparameters.
SAMPLED_KEY, OPTUNA_KEY = "_sampled", "_optuna_trial"
# The report-scale rehearsal on a CPU caps the batches of an epoch (benchmarks/report_scale.py); nothing else sets it.
MAX_BATCHES_ENV = "ITSEARCH_MAX_BATCHES_PER_EPOCH"


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, GiB (Linux reports KiB; shared pages read count too)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def sampled_params(trial_config: dict) -> dict:
    """The hyperparameters Optuna sampled for this trial (as opposed to fixed or derived)."""
    return {k: trial_config[k] for k in trial_config.get(SAMPLED_KEY, ()) if k in trial_config}


@dataclass
class TrialContext:
    """What a family's trial function gets besides its config and data (all resolved by :func:`train_trial`)."""

    checkpoint_interval: float
    feature_cache: Path | None
    imagenet_state: dict | None
    node_id: str


def _report_once(scores: dict, start: float, node_id: str) -> None:
    """A one-step fit (readout, lookup) reports once, as its only and final epoch."""
    tune.report({**scores, "best_inner_ev": scores["inner_ev"], "fit_done": 1,
                 "epoch_seconds": time.perf_counter() - start, "node_id": node_id, "peak_rss_gib": peak_rss_gib()})


def readout_trial(hparams: dict, data, ctx: TrialContext) -> None:
    """Fixed-feature readouts (``model: ridge``): one ridge fit, alpha by CV inside it."""
    from trainables.fitting.readout import fit_readout_inner

    start = time.perf_counter()
    scores = fit_readout_inner(hparams, data, ctx.feature_cache, ctx.imagenet_state)
    _report_once(scores, start, ctx.node_id)


def lookup_trial(hparams: dict, data, ctx: TrialContext) -> None:
    """Ideal observers (``model: lookup``): each image predicted by its label's mean training response."""
    from trainables.fitting.lookup import fit_lookup_inner

    start = time.perf_counter()
    _report_once(fit_lookup_inner(hparams, data), start, ctx.node_id)


def network_trial(hparams: dict, data, ctx: TrialContext) -> None:
    """Networks trained end to end (``model: network``): one report per epoch, checkpoints by policy."""
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            # A trial killed right after its final report holds only its best weights: it starts again.
            if (Path(folder) / STATE_FILE).is_file():
                resume = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)

    policy = CheckpointPolicy(ctx.checkpoint_interval)

    def report(record: dict, trainer) -> None:
        done = trainer.should_stop()
        metrics = {
            "train_loss": record["train_loss"],
            "inner_ev": record["inner_ev"],
            "inner_r": record["inner_r"],
            "best_inner_ev": trainer.best_ev,
            "best_epoch": trainer.best_epoch,
            "lr": record["lr"],
            "epoch_seconds": record["seconds"],
            "images_per_s": trainer.n_fit / record["seconds"],
            "fit_done": int(done),
            "node_id": ctx.node_id,
            # Seconds spent saving so far and saves, this one included; Ray's copy of a save into the
            # storage folder happens inside report, so it is counted in the next report.
            "checkpoint_seconds": policy.seconds,
            "checkpoint_saves": policy.saves,
            "peak_rss_gib": peak_rss_gib(),
            **({"peak_gpu_gib": torch.cuda.max_memory_allocated() / 1024**3} if torch.cuda.is_available() else {}),
        }
        if not done and not policy.due():
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            if done:  # an ended trial is never resumed: its best weights are all worth keeping
                torch.save(trainer.best_state, Path(folder) / BEST_WEIGHTS_FILE)
            else:
                torch.save(trainer.state_dict(), Path(folder) / STATE_FILE)
            written = time.perf_counter() - start
            metrics.update(checkpoint_seconds=policy.seconds + written, checkpoint_saves=policy.saves + 1,
                           checkpoint_bytes=sum(f.stat().st_size for f in Path(folder).iterdir()))
            start = time.perf_counter()
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        policy.saved(written + time.perf_counter() - start)

    max_batches = int(os.environ.get(MAX_BATCHES_ENV, "0")) or None
    fit(hparams, data, on_epoch=report, resume_state=resume, max_batches=max_batches,
        imagenet_state=ctx.imagenet_state)


# The trainable of each model family (config key ``model``): thin functions over the training core.
FAMILY_TRIALS: dict[str, Callable[[dict, object, TrialContext], None]] = {
    "network": network_trial,
    "ridge": readout_trial,
    "lookup": lookup_trial,
}


def train_trial(config: dict, data, threads: int = 1, checkpoint_interval: float = 300.0,
                feature_cache: str | None = None, imagenet: dict | None = None) -> None:
    """Ray Tune trial: run the config's family trainable (:data:`FAMILY_TRIALS`).

    Parameters
    ----------
    config : dict
        Trial config from the searcher.
    data : ITData
        Shared through the object store by ``tune.with_parameters``.
    threads : int
        CPU threads for torch (the trial's CPU share).
    checkpoint_interval : float
        Seconds between resumable checkpoints (see :class:`CheckpointPolicy`); only the last is kept.
    feature_cache : str, optional
        Folder of the layer-activation cache (ridge readouts).
    imagenet : dict, optional
        Backbone -> object-store reference of its ImageNet state dict, resolved by the driver.
    """
    torch.set_num_threads(max(1, threads))
    hparams = from_trial(config)
    state = None
    if hparams["weights"] == "imagenet" and hparams["backbone"] in (imagenet or {}):
        state = ray.get(imagenet[hparams["backbone"]])
    node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
    ctx = TrialContext(checkpoint_interval, Path(feature_cache) if feature_cache else None, state, node_id)
    FAMILY_TRIALS[hparams["model"]](hparams, data, ctx)


class StudySearcher(OptunaSearch):
    """Optuna search that records ASHA-stopped trials as PRUNED and errored ones as FAIL.

    The space (a :class:`search_spaces.context.BoundSpace`) decides every value a
    trial runs; nothing is changed after Optuna recorded the sample. The complete
    config is also stored on the Optuna trial (user attribute ``config``), so the
    study alone says what each trial ran.
    """

    def suggest(self, trial_id: str):
        params = super().suggest(trial_id)
        if params is None:
            return None
        ot_trial = self._ot_trials[trial_id]
        ot_trial.set_user_attr("config", from_trial(params))
        params[SAMPLED_KEY] = sorted(ot_trial.params)
        params[OPTUNA_KEY] = ot_trial.number
        return params

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        ot_trial = self._ot_trials[trial_id]
        # Ray hands the last result to on_trial_complete, not on_trial_result: record it as the trial's last
        # intermediate value, so that a trial pruned at its first rung still shows where it stood.
        if result and result.get(self.metric) is not None and result.get("training_iteration"):
            try:
                with warnings.catch_warnings():
                    # Mostly on_trial_result has reported this step already; Optuna then keeps the first value
                    # and warns, which says nothing wrong here.
                    warnings.filterwarnings("ignore", message="The reported value is ignored", category=UserWarning)
                    ot_trial.report(result[self.metric], int(result["training_iteration"]))
            except (ValueError, RuntimeError, NotImplementedError):  # finished in storage already, e.g. after a restore
                pass
        if error:
            state, value = optuna.trial.TrialState.FAIL, None
        elif result and result.get("fit_done"):
            state, value = optuna.trial.TrialState.COMPLETE, result.get(self.metric)
        else:  # stopped by the scheduler before its own fit finished
            state, value = optuna.trial.TrialState.PRUNED, None
        try:
            self._ot_study.tell(ot_trial, value, state=state)
        except (ValueError, RuntimeError) as err:  # e.g. already finished in storage after a restore
            log.warning("optuna: could not record trial %s: %s", trial_id, err)
        self._completed_trials.add(trial_id)


class RecheckSearcher(Searcher):
    """Serves the top-K re-check's fixed configs (:func:`trainables.study.recheck.recheck_configs`), one per trial.

    Each ended re-check trial is added to the search's Optuna study with the params and
    distributions of the trial it repeats, and user attributes ``recheck_of`` (that
    trial's number), ``seed`` and ``config``: the study alone says what every trial ran.
    """

    def __init__(self, configs: list[dict], origins: dict[str, int], study_name: str, storage_url: str, metric: str):
        super().__init__(metric=metric, mode="max")
        self.configs, self.origins = list(configs), dict(origins)
        self.study_name, self.storage_url = study_name, storage_url
        self._served: dict[str, dict] = {}
        self._curves: dict[str, dict[int, float]] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the configs are fixed; nothing to set

    def suggest(self, trial_id: str):
        if not self.configs:
            return Searcher.FINISHED
        self._served[trial_id] = self.configs.pop(0)
        return self._served[trial_id]

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if result.get(self.metric) is not None and result.get("training_iteration"):
            self._curves.setdefault(trial_id, {})[int(result["training_iteration"])] = float(result[self.metric])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        config = self._served.pop(trial_id, None)
        if config is None:
            return
        self.on_trial_result(trial_id, result or {})
        study = optuna.load_study(study_name=self.study_name, storage=self.storage_url)
        number = self.origins[config[RECHECK_KEY]]
        origin = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
        done = not error and bool((result or {}).get("fit_done"))
        study.add_trial(optuna.trial.create_trial(
            params=origin.params, distributions=origin.distributions,
            value=result[self.metric] if done else None,
            state=optuna.trial.TrialState.COMPLETE if done else optuna.trial.TrialState.FAIL,
            intermediate_values=self._curves.pop(trial_id, {}),
            user_attrs={"config": from_trial(config), "recheck_of": number, "seed": config["seed"]},
        ))

    def save(self, checkpoint_path: str) -> None:
        # A resumed search rebuilds the re-check from the trials on disk; nothing else needs saving.
        Path(checkpoint_path).write_text("")

    def restore(self, checkpoint_path: str) -> None:
        pass


class MLflowTrials(tune.Callback):
    """One MLflow run per trial, nested under the search's parent run; logged from the driver only.

    Runs are found again by their ``trial_id`` tag, so a restored search reuses
    them instead of opening duplicates, and each ends FINISHED or FAILED with a
    ``status`` tag of completed / pruned / failed.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str):
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        self._client = None
        self._runs: dict[str, str] = {}

    def __getstate__(self):  # the client holds connections; rebuild it after unpickling
        return {**self.__dict__, "_client": None, "_runs": {}}

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

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
        else:
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"trial_{trial.trial_id}",
                tags={"mlflow.parentRunId": self.parent_run_id, "trial_id": trial.trial_id, "status": "running",
                      "sampled": ",".join(sorted(sampled_params(trial.config))),
                      **({"recheck_of": trial.config[RECHECK_KEY]} if RECHECK_KEY in trial.config else {})},
            )
            run_id = run.info.run_id
            from mlflow.entities import Param

            params = [Param(k, mlflow_value(v)) for k, v in sorted(from_trial(trial.config).items())]
            self.client.log_batch(run_id, params=params)
        self._runs[trial.trial_id] = run_id
        return run_id

    def on_trial_start(self, iteration, trials, trial, **info):
        self.run_id(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        from mlflow.entities import Metric

        step = int(result.get("training_iteration", 0))
        stamp = int(time.time() * 1000)
        metrics = [Metric(k, float(result[k]), stamp, step) for k in EPOCH_METRICS if k in result]
        self.client.log_batch(self.run_id(trial), metrics=metrics)

    def on_trial_complete(self, iteration, trials, trial, **info):
        status = "completed" if (trial.last_result or {}).get("fit_done") else "pruned"
        self._finish(trial, status, "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finish(trial, "failed", "FAILED")

    def _finish(self, trial, status: str, run_status: str) -> None:
        run_id = self.run_id(trial)
        self.client.set_tag(run_id, "status", status)
        node = (trial.last_result or {}).get("node_id")
        if node:
            self.client.set_tag(run_id, "node_id", node)
        self.client.set_terminated(run_id, run_status)


class CheckpointJanitor(tune.Callback):
    """Removes an ended trial's checkpoints; keeps the best completed trial's weights, once per group.

    A completed trial's last checkpoint holds its best weights alone; it stays while
    that trial is the best completed one of its group and goes when a better one
    completes. Groups are the values of the config key ``group_by`` (the re-check keeps
    one per re-checked config); none: one group. Pruned and failed trials are never
    resumed, so nothing of theirs is kept.
    """

    def __init__(self, metric: str, group_by: str | None = None):
        self.metric, self.group_by = metric, group_by
        self.best: dict = {}

    def on_trial_complete(self, iteration, trials, trial, **info):
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
