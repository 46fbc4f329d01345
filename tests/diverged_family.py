"""A model family defined in the tests alone whose one config diverges: an inner EV of -30 from an epoch on.

The family fits nothing: a config's inner EV per epoch is a curve set by its
learning rate (rising towards 0.10-0.14), except at :data:`DIVERGING_LR`, where it
reports -30 from epoch :data:`DIVERGE_AT` to its last. Its score, as every
family's, is the best inner EV it reached: diverging at its third epoch, the config
keeps the score of its second, and only the learning curves see the -30 (as in a
real study); diverging from its first epoch (``diverge_at=1``), its score is -30
too, in every figure of the study (history, parallel coordinates, isolation).

Three uses:

- :func:`register`: the family and its space (``diverged``) in the registries, for a search in this process;
- ``python tests/diverged_family.py <search flags>``: registers them and runs the search command line;
- :func:`records` and :func:`optuna_trials`: the study's trials without Ray, each config fitted through a
  :class:`RecordingSession`, as the figures read them; :func:`write_study`: those trials as a study folder
  (plan, Optuna study, Ray's trial files), as ``analysis.report`` reads one.
"""

from __future__ import annotations

import math
import sys

import numpy as np

import search_spaces
from trainables.fitting.families import FAMILIES
from trainables.fitting.family import PROCESS_BYTES, Family, FinalFit
from trainables.fitting.loop import TRAINING_FIELDS
from trainables.study.records.trials import TrialRecord
from trainables.study.result import OBJECTIVE

SCIENTIFIC = "lr"
LRS = (3e-4, 1e-3, 3e-3, 1e-2)
DIVERGING_LR = 1e-2
DIVERGED_EV = -30.0
DIVERGE_AT = 3
EPOCHS = 6
# Every config tried first, the diverging one among them, whatever the sampler does.
POINTS_TO_EVALUATE = [{"lr": lr} for lr in LRS]


def inner_ev(lr: float, epoch: int, diverge_at: int = DIVERGE_AT) -> float:
    """The inner EV of the config with learning rate ``lr`` at ``epoch`` (1-based)."""
    if lr == DIVERGING_LR and epoch >= diverge_at:
        return DIVERGED_EV
    peak = 0.14 - 0.04 * abs(math.log10(lr / 1e-3))  # best at 1e-3, lower either side
    return peak * (1.0 - math.exp(-epoch / 1.5))


def search_fit(config, data, session, diverge_at: int = DIVERGE_AT) -> None:
    epochs = config["epochs"]
    for epoch in range(1, epochs + 1):
        ev = inner_ev(config["lr"], epoch, diverge_at)
        session.report({"epoch": epoch, "inner_ev": ev, "inner_r": math.sqrt(ev) if ev > 0 else 0.0,
                        "train_loss": 1.0 - ev}, done=epoch == epochs)


def final_fit(config, data, ctx) -> FinalFit:
    mean = data.spikes_train.mean(axis=0)
    return FinalFit(np.tile(mean, (len(data.object_val), 1)), np.tile(mean, (len(data.object_test), 1)), {})


# Its one key, the learning rate, is the training core's (a key two families read is one field).
FAMILY = Family(name="diverged", search_fit=search_fit, final_fit=final_fit,
                memory_bytes=lambda config, shape, on_gpu: PROCESS_BYTES, fields={"lr": TRAINING_FIELDS["lr"]},
                epoch_metrics=("train_loss",))


def diverged(trial, ctx) -> dict:
    trial.suggest_categorical("lr", list(LRS))
    return {"model": "diverged", "epochs": EPOCHS}


def register() -> None:
    """The registry entries: the family, and the study over it."""
    from ray import cloudpickle

    FAMILIES["diverged"] = FAMILY
    search_spaces.SEARCH_SPACES["diverged"] = diverged
    # Ray's workers unpickle the family by value: they need not find this test module on their path.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])


class Stopped(Exception):
    """What a :class:`RecordingSession` raises where a scheduler would have stopped the trial."""


class RecordingSession:
    """A :class:`~trainables.fitting.family.TrialSession` that keeps each report, as Ray's ``result.json`` would.

    Parameters
    ----------
    trial_id : str
    start : float
        Unix time of the trial's start; each epoch takes ``epoch_s`` seconds.
    stop_after : int, optional
        Epochs after which the trial is stopped (:class:`Stopped`), as ASHA stops one.
    """

    feature_cache = None

    def __init__(self, trial_id: str, start: float, epoch_s: float = 10.0, stop_after: int | None = None):
        self.trial_id, self.start, self.epoch_s, self.stop_after = trial_id, start, epoch_s, stop_after
        self.results: list[dict] = []
        self.done = False
        self.best = -math.inf

    def resume_state(self):
        return None

    def report(self, metrics, done, resumable=None, weights=None, inner_sums=None) -> None:
        n = len(self.results) + 1
        self.best = max(self.best, metrics["inner_ev"])  # the objective, as the search's session keeps it
        self.results.append({OBJECTIVE: self.best, **metrics, "fit_done": int(done), "training_iteration": n,
                             "trial_id": self.trial_id,
                             "timestamp": self.start + n * self.epoch_s, "time_this_iter_s": self.epoch_s})
        self.done = done
        if self.stop_after is not None and n >= self.stop_after and not done:
            raise Stopped


def trial_id(lr: float) -> str:
    """The id of the trial of ``lr``: eight hex digits, as Ray's."""
    return f"{LRS.index(lr) + 1:02d}d1e{int(round(-math.log10(lr) * 100)):03d}"


def records(lrs=LRS, stopped: dict | None = None, diverge_at: int = DIVERGE_AT) -> list[TrialRecord]:
    """The study's trials, fitted in this process, one after the other, in the order of ``lrs``.

    ``stopped``: lr -> the epoch after which a scheduler stopped that trial (status ``pruned``); ``diverge_at``: the
    epoch from which the diverging config reports -30.
    """
    trials = []
    for i, lr in enumerate(lrs):
        config = {"model": "diverged", "lr": lr, "epochs": EPOCHS, "_sampled": ["lr"], "_optuna_trial": i}
        session = RecordingSession(trial_id(lr), start=1.8e9 + 100.0 * i, stop_after=(stopped or {}).get(lr))
        try:
            search_fit(config, None, session, diverge_at)
        except Stopped:
            pass
        trials.append(TrialRecord(session.trial_id, config, session.results,
                                  "completed" if session.done else "pruned"))
    return trials


def optuna_trials(trials: list[TrialRecord]):
    """The trials as Optuna records them (params, distributions, value, per-epoch objective), numbered in order."""
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for t in trials:
        steps = {r["training_iteration"]: r[OBJECTIVE] for r in t.results}
        complete = t.status == "completed"
        study.add_trial(create_trial(params={"lr": t.config["lr"]},
                                     distributions={"lr": CategoricalDistribution(list(LRS))},
                                     value=t.results[-1][OBJECTIVE] if complete else None,
                                     state=TrialState.COMPLETE if complete else TrialState.PRUNED,
                                     intermediate_values=steps, user_attrs={"config": t.config}))
    return study


# The ideal observers of the study's plan, name -> inner EV, as a search of the synthetic data finds them.
REFERENCES = {"object ideal observer": 0.0694, "category ideal observer": 0.1096}


def write_study(storage, name: str = "diverged", trials: list[TrialRecord] | None = None):
    """Write ``trials`` (default: :func:`records`) as the study ``name`` under ``storage``, without Ray: the plan in
    the version-2 format (which the analysis reads, the earlier release's), the Optuna study, and per trial Ray's
    ``params.json`` and ``result.json``. Returns the study folder."""
    import json
    from pathlib import Path

    from trainables.core.layout import SEARCH_FILE, TRIAL_PREFIX, optuna_url

    trials = records() if trials is None else trials
    folder = Path(storage) / name
    folder.mkdir(parents=True)
    plan = {"name": name, "space": "diverged", "scientific": SCIENTIFIC, "searcher": "qmc", "seed": 0,
            "num_samples": len(trials),
            "scheduler": {"name": "fifo", "grace_period": 1, "reduction_factor": 3.0, "max_t": EPOCHS},
            "recheck": {"top": 0, "seeds": 0},
            "resources": {"cpus_per_trial": 1.0, "gpus_per_trial": 0.0, "max_concurrent": None,
                          "memory_per_trial_gib": None, "checkpoint_interval": 300.0},
            "data": {"source": "synthetic", "data_seed": 0, "resolution": 32, "images_per_object": 6},
            "profile": "smoke", "max_epochs": EPOCHS, "pretrained": [], "imagenet": [],
            "tracking": {"uri": None, "experiment_id": "", "parent_run_id": ""}, "notes": [],
            "git_commit": "unknown", "data_fingerprint": "0123456789ab", "image_size": 32,
            "references": REFERENCES, "finished": True, "version": 2}
    (folder / SEARCH_FILE).write_text(json.dumps(plan, indent=2) + "\n")
    study = optuna_trials(trials)
    stored = __import__("optuna").create_study(study_name=name, storage=optuna_url(folder), direction="maximize")
    stored.add_trials(study.trials)
    for t in trials:
        trial_dir = folder / f"{TRIAL_PREFIX}{t.trial_id}"
        trial_dir.mkdir()
        (trial_dir / "params.json").write_text(json.dumps(t.config))
        (trial_dir / "result.json").write_text("".join(json.dumps(r) + "\n" for r in t.results))
    return folder


if __name__ == "__main__":
    register()
    diverged.__module__ = __name__
    from trainables.search import main

    sys.exit(main(sys.argv[1:]))
