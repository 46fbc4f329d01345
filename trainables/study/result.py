"""The contract of a trial's result: the keys a trial reports, which epoch a result is, and how an ended trial ended.

A trial reports one result per epoch (a one-step fit: one result) through
:class:`~trainables.study.run.trial.RaySession`; Ray appends each to the trial's
``result.json`` and hands it to the searcher, the scheduler, the callbacks and the
live display. Every part of the study reads a result through this module, as
Ray's own parts read ``ray.tune.result``: what a key means, which epoch a result
belongs to, and whether an ended trial completed, was pruned or failed are
written here once.

Status of an ended trial:

- ``completed``: its fit ended on its own (:data:`FIT_DONE` in its last result);
- ``pruned``: it ended before its fit did, stopped by the scheduler (ASHA);
- ``failed``: it raised, or it died with its node.

A trial still to end is ``running`` (on disk: interrupted).
"""

from __future__ import annotations

# The key every search maximises: the best inner-validation EV a trial reached so far.
OBJECTIVE = "best_inner_ev"
# 1 in the last result of a trial whose fit ended on its own (its epochs, or its patience), else 0.
FIT_DONE = "fit_done"
# The trial's own epoch count (Ray's ``training_iteration`` goes on counting when a trial resumed from a checkpoint
# reports an epoch again).
EPOCH = "epoch"
# The Ray node a trial ran on.
NODE_ID = "node_id"
# Per-epoch values every trial reports (its family's own come from the family: Family.epoch_metrics); they go to
# MLflow at each epoch.
EPOCH_METRICS = ("inner_ev", "inner_r", OBJECTIVE, "epoch_seconds", "checkpoint_seconds", "peak_rss_gib")

COMPLETED, PRUNED, FAILED, RUNNING = "completed", "pruned", "failed", "running"
ENDED = (COMPLETED, PRUNED, FAILED)
# Optuna's state of a trial -> its status here (the search's trials are told to Optuna by these names).
STATUS_BY_OPTUNA_STATE = {"COMPLETE": COMPLETED, "PRUNED": PRUNED, "FAIL": FAILED, "RUNNING": RUNNING,
                          "WAITING": "waiting"}
OPTUNA_STATE_BY_STATUS = {COMPLETED: "COMPLETE", PRUNED: "PRUNED", FAILED: "FAIL"}


def epoch_of(result: dict) -> int:
    """The epoch a result reports: the trial's own count, else Ray's ``training_iteration``; 0 for none."""
    return int(result.get(EPOCH) or result.get("training_iteration") or 0)


def fit_done(result: dict | None) -> bool:
    """Whether a trial's (last) result says its fit ended on its own."""
    return bool((result or {}).get(FIT_DONE))


def ended_status(result: dict | None, error: bool) -> str:
    """How a trial that ended did: ``failed`` when it raised, ``completed`` when its fit ended on its own, else
    ``pruned`` (the scheduler stopped it)."""
    if error:
        return FAILED
    return COMPLETED if fit_done(result) else PRUNED


def status_on_disk(results: list[dict], error: bool) -> str:
    """A trial's status from Ray's files alone (a re-check run, which the search's Optuna study does not judge; or a
    trial Optuna does not know): ``failed`` with an error, ``completed`` once its fit ended, else ``running``."""
    if error:
        return FAILED
    return COMPLETED if results and fit_done(results[-1]) else RUNNING
