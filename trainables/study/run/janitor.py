"""The Ray Tune callback that removes an ended trial's checkpoints, run in the driver.

When a trial ends, :class:`CheckpointJanitor` removes its checkpoints (an ended
trial is never resumed), except the best completed trial's weights, kept once per
group (:mod:`trainables.study.run.checkpoints` says why checkpoints are costly).
"""

from __future__ import annotations

from pathlib import Path

from ray import tune

from trainables.core.layout import OPTUNA_KEY
from trainables.study.result import fit_done
from trainables.study.run.checkpoints import remove_checkpoints


class CheckpointJanitor(tune.Callback):
    """Removes an ended trial's checkpoints; keeps the best completed trial's weights, once per group.

    A completed trial's last checkpoint holds its best weights alone; it stays while
    that trial is the best completed one of its group and goes when a better one
    completes. Groups are the values of the config key ``group_by`` (the re-check keeps
    one per re-checked config); none: one group. Pruned and failed trials are never
    resumed, so nothing of theirs is kept.
    """

    def __init__(self, metric: str, group_by: str | None = None, ended_before: dict | None = None):
        self.metric, self.group_by = metric, group_by
        self.ended_before = set(ended_before or ())  # a resumed study's trials that ended before this run: left as they are
        self.best: dict = {}

    def on_trial_complete(self, iteration, trials, trial, **info):
        if trial.config.get(OPTUNA_KEY) in self.ended_before:
            return
        result = trial.last_result or {}
        value = result.get(self.metric)
        if not fit_done(result) or value is None:
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
