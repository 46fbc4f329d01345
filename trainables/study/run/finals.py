"""Final trainings on Ray: configs trained for good, each in a folder of its own, as Ray Tune trials.

A final training fits a config on all training images and scores it once on the
official validation set (the fit function, ``trainables.train.train_one``, writes its
folder: ``config.json``, ``metrics.json`` last, ``sites.csv``, predictions and
figures). Run here as Ray Tune trials with the search's resources (fractional GPUs
included), they spread over a cluster's nodes and keep a machine's cores busy; the
live table and its time left are the search's (:mod:`trainables.study.run.progress`).

A run whose folder holds its ``metrics.json``, for the same config, seed and data
fingerprint, is done (:func:`is_done`) and never runs again: a ladder killed and
started again loses nothing and trains nothing twice. Only the driver talks to MLflow
(its callbacks). Import this module only after
:func:`trainables.study.run.cluster.set_ray_environment` (it imports Ray).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import ray
import torch
from ray import tune

from trainables.core.config import ConfigError, read_config_file
from trainables.core.layout import CONFIG_FILE, METRICS_FILE
from trainables.data.schema import ITData
from trainables.fitting.families import config_of, get_family
from trainables.fitting.family import DataShape, Family
from trainables.models.weights import load_imagenet_state
from trainables.study.plan.pace import Pace, makespan
from trainables.study.plan.resources import TrialResources, concurrency
from trainables.study.plan.search_plan import ResourcePlan, SchedulerPlan
from trainables.study.records.trainings import TrainingDamaged, read_training
from trainables.study.result import EPOCH, FIT_DONE, NODE_ID
from trainables.study.run.progress import Phase, StudyProgress
from trainables.study.run.trial import provide_imagenet, trial_dirname
from trainables.study.tune.schedulers import make_trial_scheduler
from trainables.study.tune.searchers import FixedSearcher

log = logging.getLogger(__name__)
# Keys of a final run's Ray config besides its config: its output folder, its row (the key of its pace), the row's
# label (the display's column), and the export's provenance it carries into its metrics.json.
OUT_KEY, ROW_KEY, LABEL_KEY, PROVENANCE_KEY = "_out", "_row", "_label", "_provenance"
SCORE = "val_ev"  # what a final run reports: its validation EV


@dataclass(frozen=True)
class FinalRun:
    """One final training to run.

    Attributes
    ----------
    row : str
        The row it belongs to (a ladder's rung: ``<study>/<rung>``); the runs of a row share a pace.
    label : str
        The row in words (the live table's column).
    config : dict
        The complete config (its ``seed`` set).
    out : Path
        Its folder.
    provenance : dict
        Where the config came from (an export's provenance), written into its ``metrics.json``.
    pace : Pace or None
        How long its config's search trials took (the display's time left).
    """

    row: str
    config: dict
    out: Path
    provenance: dict = field(default_factory=dict)
    label: str = ""
    pace: Pace | None = None


def is_done(run: FinalRun, fingerprint: str) -> bool:
    """Whether ``run``'s folder holds its finished training: ``metrics.json`` (written last) for the same config and
    seed (``config.json``) and the same data (its fingerprint). A folder whose files cannot be read holds none."""
    if not (run.out / METRICS_FILE).is_file():
        return False
    try:
        metrics = read_training(run.out / METRICS_FILE)
        config = read_config_file(run.out / CONFIG_FILE)
    except (ConfigError, TrainingDamaged):
        return False
    # Compared on its family's keys: the worker writes the keys of the families it was shipped.
    family = {run.config["model"]: get_family(run.config["model"])}
    return (isinstance(config, dict) and config_of(config, family) == config_of(run.config, family)
            and metrics.get("data_fingerprint") == fingerprint)


def final_trial(config: dict, data: ITData, families: dict[str, Family], fit: Callable, threads: int = 1,
                feature_cache: str | None = None, imagenet: dict | None = None) -> None:
    """A final training as a Ray Tune trial: ``fit(config, data, out, provenance, feature_cache)`` (it writes the
    run's folder and returns its metrics), then one report of its validation EV.

    Parameters
    ----------
    config : dict
        The run's Ray config: the config and the keys :data:`OUT_KEY`, :data:`ROW_KEY`, :data:`PROVENANCE_KEY`.
    data : ITData
        Shared through the object store.
    families : dict
        The families the runs use, shipped by the driver.
    fit : callable
        The final training (the command's).
    threads : int
        CPU threads for torch (the trial's CPU share).
    feature_cache : str, optional
        Folder of the layer-activation cache (ridge readouts).
    imagenet : dict, optional
        Backbone -> object-store reference of its ImageNet state dict (a worker node needs no torch cache).
    """
    torch.set_num_threads(max(1, threads))
    provide_imagenet(imagenet)
    start = time.perf_counter()
    metrics = fit(config_of(config, families), data, Path(config[OUT_KEY]), config.get(PROVENANCE_KEY) or {},
                  Path(feature_cache) if feature_cache else None)
    tune.report({SCORE: metrics["ev"], "val_r": metrics["r_mean"], FIT_DONE: 1, EPOCH: metrics.get("epochs_run", 1),
                 "epoch_seconds": time.perf_counter() - start,
                 NODE_ID: ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""})


def order(runs: list[FinalRun], max_epochs: int) -> list[FinalRun]:
    """Longest first (by their paces): a set of runs on a few slots ends soonest that way."""
    return sorted(runs, key=lambda r: -(r.pace.trial(max_epochs) if r.pace else 0.0))


def run_finals(runs: list[FinalRun], data: ITData, families: dict[str, Family], fit: Callable,
               resources: ResourcePlan, storage: Path, name: str, feature_cache: Path, imagenet: tuple = (),
               callbacks: list = (), title: str = "final trainings") -> int:
    """Run ``runs`` (none done yet) as Ray Tune trials, as many at once as the cluster's CPUs, GPUs and memory allow
    (``resources``: what each asks), with the search's live table; return how many ended without error.

    ``storage``/``name``: Ray's folder of the phase (its trial folders; the runs' own folders are theirs);
    ``feature_cache``: the layer activations the studies cached (ridge readouts).
    """
    if not runs:
        return 0
    trial_resources = TrialResources(resources, DataShape.of(data))
    configs = [r.config for r in runs]
    slots = concurrency(trial_resources, configs)
    max_epochs = max(c["epochs"] for c in configs)
    runs = order(runs, max_epochs)
    shipped = {b: ray.put(load_imagenet_state(b)) for b in imagenet}
    trainable = tune.with_resources(
        tune.with_parameters(final_trial, data=data, families=families, fit=fit,
                             threads=max(1, int(resources.cpus_per_trial)),
                             feature_cache=str(feature_cache), imagenet=shipped),
        trial_resources)
    paces = {r.row: r.pace for r in runs if r.pace is not None}
    phase = Phase(title, LABEL_KEY, len(runs), max_epochs, max_epochs, slots, None,
                  paces if len(paces) == len({r.row for r in runs}) else None, pace_key=ROW_KEY,
                  scores=(("val EV", SCORE),), column="row")
    if phase.paces is not None:
        estimate = makespan([], [p.trial(max_epochs) for p in (r.pace for r in runs)], slots)
        log.info("%s: %d runs, up to %d at once, about %.1f min", title, len(runs), slots, estimate / 60)
    # Ray Tune keeps one trial pending at a time for a searcher of its own, which would start the runs one by one.
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(slots)
    ray_configs = [{**r.config, OUT_KEY: str(r.out), ROW_KEY: r.row, LABEL_KEY: r.label or r.row,
                    PROVENANCE_KEY: r.provenance} for r in runs]
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=SCORE, mode="max", search_alg=FixedSearcher(ray_configs, SCORE),
                                    scheduler=make_trial_scheduler(SchedulerPlan("fifo", 1, 2.0, 1)),
                                    num_samples=len(runs), trial_dirname_creator=trial_dirname, reuse_actors=True),
        run_config=tune.RunConfig(name=name, storage_path=str(storage), callbacks=list(callbacks),
                                  failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                                  progress_reporter=StudyProgress(phase), verbose=1),
    )
    results = tuner.fit()
    return sum(1 for r in results if r.error is None and (r.metrics or {}).get(FIT_DONE))
