"""Running a planned study on Ray: the searcher's phase, the top-K re-check, and the export at the end.

Everything here takes the :class:`~trainables.study.plan.search_plan.SearchPlan` and the study
folder; the command line (:mod:`trainables.search`) builds the plan and prints the
summary. Import this module only after
:func:`trainables.study.run.cluster.set_ray_environment` (it imports Ray).
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna
import ray
from ray import tune
from ray.tune.search import ConcurrencyLimiter

from search_spaces import points_to_evaluate
from search_spaces.context import BoundSpace
from trainables.core.layout import (BEST_WEIGHTS_FILE, EXPERIMENT_STATE, FEATURES_DIR, OPTUNA_FILE, OPTUNA_KEY,
                                    RECHECK_DIR, RECHECK_KEY, TRIALS_FILE, TUNER_FILE, WHERE_FILE,
                                    optuna_url)
from trainables.core.usage import quiet_libraries
from trainables.data.schema import ITData
from trainables.fitting.families import config_fields, epoch_metrics
from trainables.fitting.family import DataShape
from trainables.models.weights import load_imagenet_state
from trainables.study.export.best_config import NothingToExport, export, rechecked
from trainables.study.plan.pace import Budget, makespan, minutes
from trainables.study.plan.probe import ProbedSpace
from trainables.study.plan.resources import GIB, TrialResources, concurrency, memory_range
from trainables.study.plan.run_options import RunOptions
from trainables.study.plan.search_plan import SchedulerPlan, SearchPlan, write_plan
from trainables.study.recheck.rounds import config_paces, next_round
from trainables.study.records.trials import TrialRecord, load_trials, status_counts
from trainables.study.result import COMPLETED, EPOCH_METRICS, OBJECTIVE, RUNNING
from trainables.study.run.checkpoints import checkpoint_folders, keep_best_weights
from trainables.study.run.cluster import RayStart
from trainables.study.run.janitor import CheckpointJanitor
from trainables.study.run.progress import Phase, StudyProgress
from trainables.study.run.recovery import (close_leftovers, drop_interrupted_rechecks, ended_trials, ray_trials,
                                           reconcile, restart_elsewhere)
from trainables.study.run.trial import train_trial, trial_dirname
from trainables.study.tracking.callbacks import MLflowTrials
from trainables.study.tracking.store import data_input, save_runs_view, tracking_client
from trainables.study.tracking.search_run import close_search_run, start_search_run
from trainables.study.tune.samplers import make_sampler
from trainables.study.tune.schedulers import expected_epochs, make_trial_scheduler
from trainables.study.tune.searchers import FreeSlots, RecheckSearcher, StudySearcher

log = logging.getLogger(__name__)


@dataclass
class Summary:
    """What a study's end prints: trial counts, the first point's fate, the re-check table, the export."""

    counts: dict
    first: dict | None
    recheck: list
    best: dict | None = None
    best_path: str | None = None
    best_weights: str | None = None
    finished: bool = False
    notes: list = field(default_factory=list)


@dataclass
class Outcome:
    """How this run's phases ended, said at the end.

    Attributes
    ----------
    interrupted : bool
        A phase ended before its trials did (Ctrl-C, SIGTERM).
    cut : list of str
        What the time budget cut.
    """

    interrupted: bool = False
    cut: list = field(default_factory=list)


class Study:
    """A planned study in its folder, with its data loaded and its space probed: everything the Ray phases need.

    Parameters
    ----------
    plan : SearchPlan
        The study's decisions (``search.json``).
    folder : Path
        The study folder (where ``search.json`` is).
    data : ITData
        Loaded once by the driver; trials get it through Ray's object store.
    probed : ProbedSpace
        The space, sampled once by the command (:class:`~trainables.study.plan.probe.ProbedSpace`).
    options : RunOptions
        This run's options (time budget, cluster, worker reuse), never saved.
    """

    def __init__(self, plan: SearchPlan, folder: Path, data: ITData, probed: ProbedSpace,
                 options: RunOptions = RunOptions()):
        # Absolute: Ray takes the storage path as a URI.
        self.plan, self.folder, self.data, self.probed, self.options = plan, Path(folder).resolve(), data, probed, options
        self.storage = self.folder.parent
        self.families = probed.families
        self.resources = TrialResources(plan.resources, DataShape.of(data))
        self.metrics = epoch_metrics(EPOCH_METRICS, self.families)
        self.concurrency = 1  # known once Ray is up (start)
        self.dataset = data_input(data.name, data.fingerprint, plan.data.source)
        self.outcome = Outcome()

    @property
    def tracking_uri(self) -> str:
        return self.plan.tracking_uri(self.folder)

    def save(self, plan: SearchPlan) -> None:
        """The study's plan from now on, written at once (``search.json`` always says what the study runs)."""
        self.plan = plan
        write_plan(plan, self.folder)

    def start(self, new: bool, ray_start: RayStart) -> None:
        """Wait for Ray (``ray_start``: a private instance, or the cluster it joins), size the concurrency (or refuse
        what no node can run), open a new study's MLflow run, and write the plan (a resume's new re-check flags are
        in it before its first trial starts)."""
        quiet_libraries()  # again: importing MLflow set its loggers up anew
        ray_start.wait()
        self.concurrency = concurrency(self.resources, self.probed.configs)
        plan = self.plan
        if new:
            self.folder.mkdir(parents=True, exist_ok=True)
            experiment, run = start_search_run(plan, self.tracking_uri, self.dataset)
            plan = replace(plan, tracking=replace(plan.tracking, experiment_id=experiment, parent_run_id=run))
        self.save(plan)
        # The URL the study prints opens its runs best first, with its scientific hyperparameter beside the score.
        shown = (plan.scientific,) if plan.scientific in config_fields() else ()
        save_runs_view(tracking_client(self.tracking_uri), plan.tracking.experiment_id, OBJECTIVE, shown)
        self.probed.prepare(self.data, self.storage)
        # Optuna's default of one pending trial would start fractional-GPU trials one after another.
        os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(self.concurrency)
        least, most = memory_range(self.resources, self.probed.configs)
        r = plan.resources
        log.info("running up to %d trials at once (%g CPU, %g GPU and %s GiB of host memory each)", self.concurrency,
                 r.cpus_per_trial, r.gpus_per_trial,
                 f"{least / GIB:.1f}" if least == most else f"{least / GIB:.1f} to {most / GIB:.1f}")

    def trainable(self, ended_before: dict | None = None):
        """The study's trainable: the trial function with the shared data, families, ImageNet weights and resources.

        ``ended_before`` (a resumed search's): Optuna trial number -> status of the trials that ended before this run.
        """
        r = self.plan.resources
        shipped = {name: ray.put(load_imagenet_state(name)) for name in self.plan.imagenet}
        return tune.with_resources(
            tune.with_parameters(train_trial, data=self.data, families=self.families,
                                 threads=max(1, int(r.cpus_per_trial)), imagenet=shipped,
                                 checkpoint_interval=r.checkpoint_interval,
                                 feature_cache=str(self.storage / FEATURES_DIR),
                                 ended_before=frozenset(ended_before or ())),
            self.resources,
        )

    @property
    def budget(self) -> Budget | None:
        """This run's time budget, once the concurrency is known."""
        if self.options.deadline is None:
            return None
        plan = self.plan
        return Budget(self.options.deadline, expected_epochs(plan.scheduler), plan.scheduler.max_t, plan.recheck.top,
                      self.concurrency)

    def phase(self, title: str, total: int, epochs_per_trial: float, recheck: bool, paces: dict | None = None) -> Phase:
        plan = self.plan
        return Phase(title, plan.scientific, total, epochs_per_trial, plan.scheduler.max_t, self.concurrency,
                     (plan.recheck.top, plan.recheck.seeds) if recheck and plan.recheck.top else None, paces)

    def callbacks(self, ended_before: dict | None = None) -> list:
        """This run's Ray Tune callbacks: MLflow runs under the study's parent run, checkpoint clean-up."""
        tracking = self.plan.tracking
        return [MLflowTrials(self.tracking_uri, tracking.experiment_id, tracking.parent_run_id, self.metrics,
                             ended_before, self.dataset),
                CheckpointJanitor(OBJECTIVE, RECHECK_KEY, ended_before)]

    def run_config(self, name: str, storage_path: Path, phase: Phase, observed=None) -> tune.RunConfig:
        """Ray's run config of a phase: this run's callbacks, our display (``observed``: the searcher's pace)."""
        return tune.RunConfig(
            name=name, storage_path=str(storage_path), callbacks=self.callbacks(),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            progress_reporter=StudyProgress(phase, observed), verbose=1,
        )

    def search_phase(self) -> Phase:
        plan = self.plan
        return self.phase(f"search {plan.space}", plan.num_samples, expected_epochs(plan.scheduler), recheck=True)

    def search_tuner(self, samples: int | None = None) -> tune.Tuner:
        """A new Tuner of the searcher's phase.

        ``samples``: trials the searcher still runs (a moved study's search, restarted without Ray's state).
        """
        plan, new = self.plan, samples is None
        samples = plan.num_samples if new else samples
        # The re-check's first round, K runs at most, runs in the search's slots as they free up. Not in a search that
        # goes on without Ray's state: its new searcher knows only the trials that end from now on.
        free = plan.recheck.top if plan.recheck.seeds and new else 0
        with warnings.catch_warnings():  # a define-by-run space is what this searcher is built for; Ray warns anyway
            warnings.filterwarnings("ignore", message=".*[Dd]efine-by-run.*")
            searcher = StudySearcher(
                space=BoundSpace(plan.space, self.probed.ctx), metric=OBJECTIVE, mode="max",
                points_to_evaluate=(self.probed.first_points() or None) if new else None,
                sampler=make_sampler(plan.sampler, plan.seed),
                study_name=plan.name, storage=optuna.storages.RDBStorage(optuna_url(self.folder)),
                free_slots=FreeSlots(samples, plan.recheck.top, plan.seed) if free else None, budget=self.budget,
            )
        return tune.Tuner(
            self.trainable(),
            tune_config=tune.TuneConfig(metric=OBJECTIVE, mode="max",
                                        search_alg=ConcurrencyLimiter(searcher, max_concurrent=self.concurrency),
                                        scheduler=make_trial_scheduler(plan.scheduler), num_samples=samples + free,
                                        trial_dirname_creator=trial_dirname, reuse_actors=self.options.reuse_workers),
            run_config=self.run_config(plan.name, self.storage, self.search_phase(), searcher.observed),
        )

    def restored_search_tuner(self, ended_before: dict) -> tune.Tuner:
        """The searcher's phase as Ray saved it, given this run's options.

        Ray restores a Tuner as the study's first run pickled it (``tuner.pkl``): its searcher, callbacks and
        display. The study's state is Ray's to restore; this run's options (the time budget, the trials that ended
        before it, the display's concurrency) are this run's, and Ray offers no public way to give a restored Tuner
        new ones, so they are set on its internal tuner (a Ray Client tuner, ``ray://``, keeps the saved ones).
        """
        tuner = tune.Tuner.restore(str(self.folder), trainable=self.trainable(ended_before), resume_unfinished=True,
                                   resume_errored=False, restart_errored=False)
        internal = getattr(tuner, "_local_tuner", None)
        if internal is not None:
            searcher = internal._tune_config.search_alg.searcher  # inside its ConcurrencyLimiter
            searcher.budget = self.budget
            run_config = internal.get_run_config()
            run_config.callbacks = self.callbacks(ended_before)
            run_config.progress_reporter = StudyProgress(self.search_phase(), searcher.observed)
        return tuner

    def search_done(self, trials: list[TrialRecord]) -> bool:
        """Whether the searcher's phase ended: every trial it was to run (or, in this run, the time budget let it
        start) has ended."""
        counts = status_counts(trials)
        return counts[RUNNING] == 0 and (sum(counts.values()) >= self.plan.num_samples or bool(self.outcome.cut))

    def run_search(self, resume: bool) -> None:
        where = self.folder / WHERE_FILE
        moved = resume and where.is_file() and where.read_text().strip() != str(self.folder)
        # Stopped before Ray Tune first saved its state: nothing to restore, the study's own files say what ran.
        unsaved = resume and not ((self.folder / TUNER_FILE).is_file() and any(self.folder.glob(EXPERIMENT_STATE)))
        where.write_text(f"{self.folder}\n")
        samples = None
        if moved or unsaved:  # Ray's saved state names the old folder, or there is none: go on from the study's files
            if (self.folder / OPTUNA_FILE).is_file():
                samples = restart_elsewhere(self.folder, self.plan, self.tracking_uri)
        elif resume:
            reconcile(self.folder, self.plan.name, self.tracking_uri, self.plan.tracking)
        ended_before: dict[int, str] = {}
        if resume:
            # Re-check runs the search's slots took that Tuner.restore will not resume (Ray's state lacks them, or is
            # set aside) would stay unfinished: they go, and the re-check's rounds run them again.
            known = {} if moved or unsaved else ray_trials(self.folder)
            drop_interrupted_rechecks([t for t in load_trials(self.folder) if t.trial_id not in known],
                                      self.tracking_uri, self.plan.tracking)
            # Trials that ended before the kill: Ray may hold them as unfinished, and they must not run (or report)
            # again.
            ended_before = ended_trials(self.folder, self.plan.name)
            if self.search_done(load_trials(self.folder)):
                return
        if resume and not (moved or unsaved):
            self.restored_search_tuner(ended_before).fit()
        else:
            self.search_tuner(samples).fit()
        trials = load_trials(self.folder)
        counts = status_counts(trials)
        started = sum(counts.values())
        if counts[RUNNING] or any(RECHECK_KEY in t.config and t.status == RUNNING for t in trials):
            self.outcome.interrupted = True
        elif self.options.deadline is not None and started < self.plan.num_samples:
            self.outcome.cut.append(f"the search started {started} of its {self.plan.num_samples} trials; the other "
                                    f"{self.plan.num_samples - started} would not have ended in time")

    def run_recheck(self) -> None:
        """Race the K best configs over new seeds, one round at a time (:mod:`trainables.study.recheck`), until one is
        left or every config still in has its S seeds; a resumed study continues from the runs on disk."""
        top, seeds = self.plan.recheck.top, self.plan.recheck.seeds
        if top and not self.outcome.interrupted:
            drop_interrupted_rechecks(load_trials(self.folder), self.tracking_uri, self.plan.tracking)
        while top and not self.outcome.interrupted:
            trials = load_trials(self.folder)
            if not self.search_done(trials):
                return
            configs = next_round(trials, top, seeds, self.plan.seed)
            if not configs:
                return
            paces = config_paces(trials, configs)
            round_s = self.round_estimate(paces, configs)
            budget = self.budget
            # The race's round: the seed its runs get (round 1 may have run in the search's free slots).
            rounds = max(c["seed"] for c in configs) - self.plan.seed
            if budget is not None and round_s is not None and time.time() + round_s + budget.closing_s > budget.deadline:
                self.outcome.cut.append(f"the re-check stopped after {rounds - 1} round{'s' * (rounds != 2)}: a round "
                                        f"of {len(configs)} runs takes about {minutes(round_s)}, "
                                        f"{minutes(max(budget.deadline - time.time(), 0))} were left")
                return
            origins = {t.trial_id: t.config[OPTUNA_KEY] for t in trials if OPTUNA_KEY in t.config}
            log.info("re-check round %d: %d config%s, one more seed each (to their end, no early stopping)", rounds,
                     len(configs), "s" * (len(configs) > 1))
            searcher = RecheckSearcher(configs, origins, self.plan.name, optuna_url(self.folder), OBJECTIVE)
            fifo = SchedulerPlan("fifo", 1, 2.0, self.plan.scheduler.max_t)
            tune.Tuner(
                self.trainable(),
                tune_config=tune.TuneConfig(metric=OBJECTIVE, mode="max", search_alg=searcher,
                                            scheduler=make_trial_scheduler(fifo), num_samples=len(configs),
                                            trial_dirname_creator=trial_dirname,
                                            reuse_actors=self.options.reuse_workers),
                run_config=self.run_config(RECHECK_DIR, self.folder, self.phase(
                    f"re-check round {rounds}", len(configs), self.plan.scheduler.max_t, recheck=False, paces=paces)),
            ).fit()
            ended = {(t.config.get(RECHECK_KEY), t.config.get("seed")) for t in load_trials(self.folder)
                     if t.status == COMPLETED}
            if any((c[RECHECK_KEY], c["seed"]) not in ended for c in configs):
                self.outcome.interrupted = True

    def round_estimate(self, paces: dict, configs: list[dict]) -> float | None:
        """Seconds a re-check round takes: each run as long as its config's own runs took (``paces``, from
        :func:`~trainables.study.recheck.rounds.config_paces`), started in order as slots free up; None when a
        config has no pace (none of its runs reported)."""
        if any(c[RECHECK_KEY] not in paces for c in configs):
            return None
        return makespan([], [paces[c[RECHECK_KEY]].trial(self.plan.scheduler.max_t) for c in configs],
                        self.concurrency)

    def finish(self) -> Summary:
        """Export the best config and trials table, keep the best weights, close the MLflow run, record whether the
        study finished; return what to print."""
        trials = load_trials(self.folder)
        plan, outcome = self.plan, self.outcome
        summary = Summary(status_counts(trials), first_point(plan.space, trials), rechecked(plan, trials))
        try:
            best_path, summary.best = export(self.storage, plan.name)
            summary.best_path = str(best_path)
        except NothingToExport as err:
            log.warning("%s", err)
        weights = keep_best_weights(trials, weights_trial(trials, summary.best), self.folder / BEST_WEIGHTS_FILE)
        summary.best_weights = str(weights) if weights else None
        done = self.search_done(trials) and not outcome.interrupted
        summary.finished = done and not outcome.cut and not next_round(trials, plan.recheck.top, plan.recheck.seeds,
                                                                       plan.seed)
        if summary.finished:  # nothing may be left RUNNING once the study is done
            close_leftovers(self.folder, plan.name, self.tracking_uri, plan.tracking, trials, self.metrics)
        summary.notes = [f"time budget: {what}" for what in outcome.cut]
        close_search_run(self.tracking_uri, plan.tracking.parent_run_id, summary.counts, summary.best,
                         summary.best_path, self.folder / TRIALS_FILE, plan.references, done)
        self.save(replace(plan, finished=summary.finished))
        return summary


def weights_trial(trials: list[TrialRecord], best: dict | None) -> str | None:
    """The trial whose weights are kept: of the exported config's trials (its search run and its re-check seeds),
    the best-scoring one whose checkpoint the janitor kept."""
    if best is None:
        return None
    chosen = best["provenance"]["trial_id"]
    own = [t for t in trials if t.trial_id == chosen or t.config.get(RECHECK_KEY) == chosen]
    own = [t for t in own if t.status == "completed" and t.best(OBJECTIVE) is not None and t.folder is not None
           and any((f / BEST_WEIGHTS_FILE).is_file() for f in checkpoint_folders(t.folder))]
    return max(own, key=lambda t: t.best(OBJECTIVE)).trial_id if own else None


def first_point(space: str, trials: list[TrialRecord]) -> dict | None:
    """What became of the space's first point to evaluate (the report's recipe): status, epochs, score, rank."""
    if not points_to_evaluate(space):
        return None
    first = next((t for t in trials if t.config.get(OPTUNA_KEY) == 0), None)
    if first is None:
        return None
    ranked = sorted((t.best(OBJECTIVE) for t in trials if t.status == "completed" and RECHECK_KEY not in t.config
                     and t.best(OBJECTIVE) is not None), reverse=True)
    value = first.best(OBJECTIVE)
    return {"trial_id": first.trial_id, "status": first.status, "epochs": first.epochs, "value": value,
            "rank": ranked.index(value) + 1 if first.status == "completed" and value in ranked else None,
            "of": len(ranked)}


