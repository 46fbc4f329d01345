"""Recovery of a resumed study: what a kill left behind is settled before the study runs again.

A kill (even SIGKILL) can leave Optuna trials RUNNING that Ray never ran, re-check
runs half done, MLflow runs RUNNING, and Ray's saved state naming a folder the study
no longer lies in. The functions here settle each, so that a resumed study loses no
trial, runs none twice and leaves nothing RUNNING once it ends.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import optuna
from mlflow.tracking import MlflowClient

from trainables.core.layout import OPTUNA_FILE, OPTUNA_KEY, PARAMS_FILE, RAY_STATE, RECHECK_KEY, TRIAL_PREFIX
from trainables.study.plan.search_plan import SearchPlan, TrackingPlan
from trainables.study.records.ray_state import ray_trials
from trainables.study.records.trials import REQUEUED_ATTR, TrialRecord, load_optuna_study
from trainables.study.result import RUNNING, STATUS_BY_OPTUNA_STATE
from trainables.study.tracking.callbacks import result_metrics
from trainables.study.tracking.search_run import end_runs, finish_run, running_trial_runs

log = logging.getLogger(__name__)


def ended_trials(folder: Path, name: str) -> dict[int, str]:
    """Optuna trial number -> records' status of every search trial that ended (COMPLETE, PRUNED, FAIL)."""
    if not (folder / OPTUNA_FILE).is_file():  # stopped before the searcher made its database
        return {}
    return {t.number: STATUS_BY_OPTUNA_STATE[t.state.name] for t in load_optuna_study(folder, name).trials
            if t.state.is_finished()}


def abandon(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Tell Optuna that a trial it holds as RUNNING never ran to its end and is no trial of the study: FAIL, marked
    :data:`~trainables.study.records.trials.REQUEUED_ATTR`, so that the study's records leave it out."""
    study._storage.set_trial_user_attr(trial._trial_id, REQUEUED_ATTR, True)  # Optuna's public API has no call for it
    study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def requeue(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A trial that never ran: abandoned, its point queued again (user attribute ``requeued_from``)."""
    abandon(study, trial)
    study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.number}, skip_if_exists=False)


def reconcile(folder: Path, name: str, tracking_uri: str, tracking: TrackingPlan) -> None:
    """Before a resume, settle what a kill left behind, so that no trial is lost or left RUNNING.

    An Optuna trial that is RUNNING but unknown to Ray's saved state was asked for just before the kill: Ray will
    never run it. It is marked FAIL, its sampled point is queued again with user attribute ``requeued_from`` (so the
    search does not silently drop it), its trial folder (if Ray made one) is removed and its MLflow run ended.
    """
    known = ray_trials(folder)
    numbers = {info["config"].get(OPTUNA_KEY) for info in known.values()}
    study = load_optuna_study(folder, name)
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.RUNNING and trial.number not in numbers:
            requeue(study, trial)
            log.info("trial %d was asked for just before the study stopped and never ran: its point is queued again",
                     trial.number)
            for params in folder.glob(f"{TRIAL_PREFIX}*/{PARAMS_FILE}"):
                if json.loads(params.read_text()).get(OPTUNA_KEY) == trial.number:
                    end_runs(tracking_uri, tracking, {params.parent.name.removeprefix(TRIAL_PREFIX)})
                    shutil.rmtree(params.parent)


def restart_elsewhere(folder: Path, plan: SearchPlan, tracking_uri: str) -> int:
    """A moved study (Ray's saved state names the old folder), or one stopped before Ray Tune saved its state: that
    state is set aside and the search goes on with a new Tuner over the same Optuna study. Interrupted trials start
    again (their points queued again, their folders removed, their MLflow runs ended); returns how many trials the
    searcher still runs."""
    study = load_optuna_study(folder, plan.name)
    interrupted = [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    numbers = {t.number for t in interrupted}
    for trial in interrupted:
        requeue(study, trial)
    for params in folder.glob(f"{TRIAL_PREFIX}*/{PARAMS_FILE}"):
        if json.loads(params.read_text()).get(OPTUNA_KEY) in numbers:
            end_runs(tracking_uri, plan.tracking, {params.parent.name.removeprefix(TRIAL_PREFIX)})
            shutil.rmtree(params.parent)
    for pattern in RAY_STATE:
        for path in folder.glob(pattern):
            path.unlink()
    done = sum(1 for t in study.trials if t.state.is_finished() and t.number not in numbers
               and "recheck_of" not in t.user_attrs)
    if interrupted:
        log.info("going on without Ray Tune's saved state: %d interrupted trial%s start again", len(interrupted),
                 "s" * (len(interrupted) > 1))
    return max(plan.num_samples - done, 0)


def drop_interrupted_rechecks(trials: list[TrialRecord], tracking_uri: str, tracking: TrackingPlan) -> None:
    """Re-check runs a kill interrupted are run again from their start: their folders go, their MLflow runs end."""
    stale = [t for t in trials if RECHECK_KEY in t.config and t.status == "running" and t.folder is not None]
    if stale:
        end_runs(tracking_uri, tracking, {t.trial_id for t in stale})
        for t in stale:
            shutil.rmtree(t.folder, ignore_errors=True)


def close_leftovers(folder: Path, name: str, tracking_uri: str, tracking: TrackingPlan,
                    trials: list[TrialRecord], metrics: tuple) -> None:
    """A finished study's Optuna trials still RUNNING become FAIL. Its MLflow trial runs still RUNNING end: those of
    trials that ended before a kill stopped the callbacks (a moved study's, whose Ray state was set aside) with their
    status and any epoch not logged yet (``metrics``: the study's per-epoch metrics); the others KILLED, status
    ``interrupted``."""
    study = load_optuna_study(folder, name)
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.RUNNING:
            abandon(study, trial)
    ended = {t.trial_id: t for t in trials if t.status != RUNNING}
    client = MlflowClient(tracking_uri)
    for run in running_trial_runs(client, tracking):
        record = ended.get(run.data.tags["trial_id"])
        if record is None:
            continue
        stamp = int(time.time() * 1000)
        reported = [m for row in record.results for m in result_metrics(row, stamp, metrics)]
        logged = {(key, m.step) for key in {m.key for m in reported}
                  for m in client.get_metric_history(run.info.run_id, key)}
        client.log_batch(run.info.run_id, metrics=[m for m in reported if (m.key, m.step) not in logged])
        finish_run(client, run.info.run_id, record.status)
    end_runs(tracking_uri, tracking)
