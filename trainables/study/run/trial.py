"""A search trial inside Ray Tune: its family's search fit, reporting through Ray.

The training core and the families know nothing of Ray: they report to a
:class:`~trainables.fitting.family.TrialSession`, and :class:`RaySession` is that
session over ``ray.tune.report``. It adds what every trial reports (the best
inner-validation EV so far, whether the fit ended, memory, node) and decides when
a trial saves a checkpoint.

Checkpoints: at report scale one save of a ResNet-34 with the 7000-7000 head, Adam
state and best weights is about 1.2 GB, and an epoch about a second of GPU time. A
trial therefore saves a resumable checkpoint only when ``checkpoint_interval``
seconds have passed since its last one, and never so often that saving takes more
than a tenth of its time (:mod:`trainables.study.run.checkpoints`); a completed trial
ends with its best weights alone (no optimiser state).
"""

from __future__ import annotations

import json
import math
import resource
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import ray
import torch
from ray import tune

from trainables.core.layout import BEST_WEIGHTS_FILE, FINAL_FILE, INNER_SUMS_FILE, OPTUNA_KEY, STATE_FILE, TRIAL_PREFIX
from trainables.core.metrics import ObjectSums
from trainables.data.schema import ITData
from trainables.fitting.families import config_of
from trainables.fitting.family import Family
from trainables.models import weights
from trainables.study.result import EPOCH, FIT_DONE, NODE_ID, OBJECTIVE
from trainables.study.run.checkpoints import CheckpointPolicy


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, GiB (Linux reports KiB; shared pages read count too)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


class RaySession:
    """A :class:`~trainables.fitting.family.TrialSession` over Ray Tune: reports, checkpoints by policy, resumes.

    Parameters
    ----------
    checkpoint_interval : float
        Seconds of training between resumable checkpoints (see :class:`CheckpointPolicy`).
    feature_cache : Path or None
        Folder of cached layer activations.
    """

    def __init__(self, checkpoint_interval: float, feature_cache: Path | None):
        self.feature_cache = feature_cache
        self.policy = CheckpointPolicy(checkpoint_interval)
        self.node_id = ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""
        self.best = -math.inf
        self.last = time.perf_counter()

    def resume_state(self) -> dict | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            path = Path(folder) / STATE_FILE
            return torch.load(path, map_location="cpu", weights_only=False) if path.is_file() else None

    def final_result(self) -> dict | None:
        """The last report of a trial that ended before the study was interrupted (its last checkpoint holds it);
        None for a trial to fit."""
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            path = Path(folder) / FINAL_FILE
            return json.loads(path.read_text()) if path.is_file() else None

    def report(self, metrics: dict, done: bool, resumable: Callable[[], dict] | None = None,
               weights: Callable[[], dict] | None = None, inner_sums: Callable[[], ObjectSums] | None = None) -> None:
        now = time.perf_counter()
        self.best = max(self.best, metrics["inner_ev"])
        metrics = {OBJECTIVE: self.best, "epoch_seconds": now - self.last, EPOCH: 1, **metrics,
                   FIT_DONE: int(done),
                   NODE_ID: self.node_id, "peak_rss_gib": peak_rss_gib(),
                   # Seconds spent saving so far and saves, this one included; Ray's copy of a save into the
                   # storage folder happens inside report, so it is counted in the next report.
                   "checkpoint_seconds": self.policy.seconds, "checkpoint_saves": self.policy.saves}
        save = weights if done else resumable if self.policy.due() else None
        if save is None and not done:
            tune.report(metrics)
        else:
            with tempfile.TemporaryDirectory() as folder:
                start = time.perf_counter()
                if done:  # the last report, kept with the last checkpoint: a trial that ended is never run again
                    (Path(folder) / FINAL_FILE).write_text(json.dumps(metrics))
                    if inner_sums is not None:  # what the re-check resamples; kept in the trial folder for good
                        np.savez(Path(folder) / INNER_SUMS_FILE, **inner_sums())
                if save is not None:
                    torch.save(save(), Path(folder) / (BEST_WEIGHTS_FILE if done else STATE_FILE))
                written = time.perf_counter() - start
                metrics.update(checkpoint_seconds=self.policy.seconds + written, checkpoint_saves=self.policy.saves + 1,
                               checkpoint_bytes=sum(f.stat().st_size for f in Path(folder).iterdir()))
                start = time.perf_counter()
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
            self.policy.saved(written + time.perf_counter() - start)
        self.last = time.perf_counter()


# Object-store entries this worker has fetched (ImageNet state dicts): a worker reused for the next trial fetches
# each once.
_FETCHED: dict[str, dict] = {}


def _fetched(ref) -> dict:
    key = ref.hex()
    if key not in _FETCHED:
        _FETCHED[key] = ray.get(ref)
    return _FETCHED[key]


def provide_imagenet(imagenet: dict | None) -> None:
    """Register the ImageNet state dicts the driver shipped (backbone -> object-store reference) with
    :func:`trainables.models.weights.provide`: a worker node needs no torch cache, and a reused worker fetches each
    once."""
    for backbone, ref in (imagenet or {}).items():
        weights.provide(backbone, lambda ref=ref: _fetched(ref))


def trial_dirname(trial) -> str:
    """Short trial folder names (Ray's default spells out the whole config)."""
    return f"{TRIAL_PREFIX}{trial.trial_id}"


def train_trial(config: dict, data: ITData, families: dict[str, Family], threads: int = 1,
                checkpoint_interval: float = 300.0, feature_cache: str | None = None,
                imagenet: dict | None = None, ended_before: frozenset = frozenset()) -> None:
    """Ray Tune trial: run the config's family's search fit.

    Parameters
    ----------
    config : dict
        Trial config from the searcher.
    data : ITData
        Shared through the object store by ``tune.with_parameters``.
    families : dict
        The families the search's configs use, shipped by the driver (so a family registered there at run
        time reaches the workers too).
    threads : int
        CPU threads for torch (the trial's CPU share).
    checkpoint_interval : float
        Seconds between resumable checkpoints (see :class:`CheckpointPolicy`); only the last is kept.
    feature_cache : str, optional
        Folder of the layer-activation cache (ridge readouts).
    imagenet : dict, optional
        Backbone -> object-store reference of its ImageNet state dict, resolved by the driver; registered
        with :func:`trainables.models.weights.provide`, so a worker node needs no torch cache.
    ended_before : frozenset of int
        Optuna trial numbers that ended before the study was interrupted: Ray may still hold such a trial as
        unfinished (the kill came before it saved its state); it ends at once, without fitting or reporting.
    """
    if config.get(OPTUNA_KEY) in ended_before:
        return
    session = RaySession(checkpoint_interval, Path(feature_cache) if feature_cache else None)
    final = session.final_result()
    if final is not None:  # it ended before the study was interrupted: its last report again, no fit
        tune.report(final)
        return
    torch.set_num_threads(max(1, threads))
    provide_imagenet(imagenet)
    hparams = config_of(config, families)
    families[hparams["model"]].search_fit(hparams, data, session)
