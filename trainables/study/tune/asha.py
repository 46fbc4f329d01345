"""ASHA for a search whose free slots also run re-check runs: those are never judged.

A re-check run (its config carries :data:`~trainables.core.layout.RECHECK_KEY`)
trains a config again to its end with a new seed. Judging it at the rungs would
cut it short, and its score at a rung (the config is among the best) would raise
the bar for the search trials still running; so the scheduler lets it run and
leaves it out of its rungs. Imported only once Ray's environment is set
(:mod:`trainables.study.tune.schedulers`).
"""

from __future__ import annotations

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from trainables.core.layout import RECHECK_KEY


class SearchASHA(AsyncHyperBandScheduler):
    """Ray's asynchronous successive halving (one bracket or Hyperband's several), blind to re-check runs."""

    def on_trial_add(self, tune_controller, trial):
        if RECHECK_KEY not in trial.config:
            super().on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result):
        if RECHECK_KEY in trial.config:
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result):
        if RECHECK_KEY not in trial.config:
            super().on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        if RECHECK_KEY not in trial.config:
            super().on_trial_remove(tune_controller, trial)
