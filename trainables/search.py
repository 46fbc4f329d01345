"""Run a study: Ray Tune with Optuna search, ASHA early stopping and MLflow tracking.

    python -m trainables.search --space vgg_depth
    python -m trainables.search --resume --name vgg_depth

Everything of a study lives in ``<storage>/<name>/`` (:mod:`trainables.core.layout`):
Ray's trial folders, the Optuna study (``optuna.db``), the plan (``search.json``),
and at the end ``best_config.json`` and ``trials.csv``. Trials log to MLflow
(``sqlite:///<storage>/mlflow.db`` by default), nested under one parent run.
This module checks the flags, loads the data, probes the space once and builds the plan
(:mod:`trainables.study.plan.search_plan`) before anything is written or Ray starts;
:mod:`trainables.study.run.runner` runs it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from search_spaces import SEARCH_SPACES, profile_hints, scientific_parameter
from search_spaces.context import SpaceContext
from trainables.cli import (add_data_arguments, add_weights_arguments, check_tracking_uri, profile_message,
                            resolve_data_arguments, weights_policy)
from trainables.core.config import ConfigError
from trainables.core.layout import OPTUNA_FILE, SEARCH_FILE, TRIALS_FILE
from trainables.core.usage import Parser, UsageError, check_writable, fail, setup_logging
from trainables.data.datasets import load_dataset
from trainables.data.schema import DataError, ITData
from trainables.data.synthetic import SyntheticSpec
from trainables.fitting.families import complete, get_family, reference_scores
from trainables.study.plan import defaults
from trainables.study.plan.pace import parse_duration
from trainables.study.plan.probe import ProbedSpace
from trainables.study.plan.profiles import Profile
from trainables.study.plan.resources import check_this_machine
from trainables.study.plan.run_options import RunOptions
from trainables.study.plan.search_plan import (DataPlan, PlanError, RecheckPlan, ResourcePlan, SchedulerPlan,
                                               SearchPlan, TrackingPlan, check_resumable, read_plan)
from trainables.study.recheck.table import format_table, runs_spent
from trainables.study.records.ray_state import check_ray_state
from trainables.study.records.trials import StudyDamaged, load_optuna_study, load_trials
from trainables.study.run.cluster import RayStart, check_reachable, set_ray_environment
from trainables.study.run.lock import StudyLock
from trainables.study.result import OBJECTIVE
from trainables.study.tracking.ui import runs_url, view_key
from trainables.study.tune.samplers import SAMPLERS
from trainables.study.tune.schedulers import SCHEDULERS, describe

log = logging.getLogger("trainables.search")


def parse_args(argv):
    # The study's flags default to None, so that a resume can tell the flags it was given from those it was not
    # (RESUME_FLAGS are this run's: --storage, --resume and the like).
    p = Parser(prog="python -m trainables.search", description=__doc__.split("\n")[0])
    p.add_argument("--space", choices=list(SEARCH_SPACES), help="the study to run")
    add_data_arguments(p)
    add_weights_arguments(p)
    p.add_argument("--num-samples", type=int, help="trials (default: the profile's)")
    p.add_argument("--sampler", "--searcher", dest="sampler", choices=list(SAMPLERS),
                   help=f"Optuna's sampler; qmc: quasi-random, to explore (default {defaults.SAMPLER}; --searcher is "
                        "its old name)")
    p.add_argument("--seed", type=int, help="seed of the sampler and of every trial (default 0)")
    p.add_argument("--scheduler", choices=list(SCHEDULERS),
                   help="early stopping: asha, hyperband (asynchronous, several brackets) or fifo (none); "
                        f"default {defaults.SCHEDULER}")
    p.add_argument("--grace-period", type=int,
                   help="ASHA/Hyperband: epochs before a trial can be stopped (default: "
                        f"{defaults.GRACE_FRACTION:g} of the longest recipe's epochs, at least {defaults.MIN_GRACE})")
    p.add_argument("--reduction-factor", type=float,
                   help=f"ASHA/Hyperband: keep 1/f of the trials at each rung (default {defaults.REDUCTION_FACTOR:g})")
    p.add_argument("--recheck-top", type=int, metavar="K",
                   help="at the end, train the K best completed configs again with new seeds and export the best mean "
                        "(default: the profile's, 2 smoke / 3 full; 0: off; with --resume, also re-checks a finished search)")
    p.add_argument("--recheck-seeds", type=int, metavar="S",
                   help="at most this many new seeds per re-checked config (default: the profile's, 2 smoke / 3 full; "
                        "at least 2)")
    p.add_argument("--gpus-per-trial", type=float, help="fractional allowed (default: 1 with a GPU, else 0)")
    p.add_argument("--cpus-per-trial", type=float, help="default 1")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: what CPUs, GPUs and memory allow)")
    p.add_argument("--memory-per-trial", type=float,
                   help="GiB of host memory a trial adds beyond the shared images (default: estimated per trial)")
    p.add_argument("--checkpoint-interval", type=float,
                   help="seconds of training between a trial's resumable checkpoints (default 300; saving never takes "
                        "more than 10%% of a trial's time; ended trials' checkpoints are removed)")
    p.add_argument("--storage", type=Path, default=Path("runs"), help="folder of the studies (default ./runs)")
    p.add_argument("--name", help="the study's name and folder (default: the space name)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<storage>/mlflow.db)")
    p.add_argument("--address", help="join an existing Ray cluster (e.g. 127.0.0.1:6379)")
    p.add_argument("--time-budget", metavar="DURATION",
                   help="end within this time (e.g. 30m, 2h, 1h30m): no trial or re-check round starts that would not "
                        "end in time; the summary says what was cut")
    p.add_argument("--resume", action="store_true", help="continue the study --name (or --space) in --storage")
    args = p.parse_args(argv)
    if not args.resume and not args.space:
        fail("--space is required (valid: " + ", ".join(SEARCH_SPACES) + ")")
    return args


def check_numbers(args) -> None:
    """Refuse numeric flags out of range, on a new search and a resume alike."""
    for flag, low in (("num_samples", 1), ("grace_period", 1), ("max_concurrent", 1), ("checkpoint_interval", 0),
                      ("recheck_top", 0), ("seed", 0)):
        value = getattr(args, flag)
        if value is not None and value < low:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= {low}, got {value}")
    if args.recheck_seeds is not None and args.recheck_seeds < 2:
        raise UsageError(f"--recheck-seeds must be >= 2 (a standard error needs two), got {args.recheck_seeds}")
    if args.reduction_factor is not None and args.reduction_factor <= 1:
        raise UsageError(f"--reduction-factor must be > 1, got {args.reduction_factor}")
    for flag in ("memory_per_trial", "cpus_per_trial"):
        value = getattr(args, flag)
        if value is not None and value <= 0:
            raise UsageError(f"--{flag.replace('_', '-')} must be > 0, got {value}")
    if args.gpus_per_trial is not None and args.gpus_per_trial < 0:
        raise UsageError(f"--gpus-per-trial must be >= 0, got {args.gpus_per_trial}")
    check_name(args.name if args.name is not None else args.space)
    if args.time_budget is not None:
        try:
            parse_duration(args.time_budget)
        except ValueError as err:
            raise UsageError(f"--time-budget {err}") from None


def check_name(name: str | None) -> None:
    """A study's name is a folder name inside ``--storage``: no path separators, no ``..``."""
    if name is not None and (not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith(".")):
        raise UsageError(f"--name {name!r} must be a plain folder name (no '/', no leading '.')")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def new_study(args) -> tuple[SearchPlan, ITData, ProbedSpace]:
    """Every check and decision of a new search, before anything is written or Ray starts: the flags, the data
    (loaded and validated once), the space (probed once, at the data's image size) and the ImageNet weights it wants.

    Returns the plan, the data and the probed space.
    """
    check_numbers(args)
    profile = resolve_data_arguments(args, profile_hints(args.space))
    name = args.name or args.space
    if (args.storage / name / SEARCH_FILE).exists():
        raise UsageError(f"a search named '{name}' exists in {args.storage}; use --resume, or another --name")
    if args.tracking_uri:
        check_tracking_uri(args.tracking_uri)
    check_writable(args.storage / name, "--storage")
    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (1.0 if torch.cuda.is_available() else 0.0)
    resources = ResourcePlan(args.cpus_per_trial or 1.0, gpus, args.max_concurrent, args.memory_per_trial,
                             300.0 if args.checkpoint_interval is None else args.checkpoint_interval)
    if not args.address:  # a private Ray instance: this machine's CPUs and GPUs are all it will have
        check_this_machine(resources)
    source = args.data if args.data == "synthetic" else str(Path(args.data).resolve())
    data_plan = DataPlan(source, args.data_seed, profile.resolution, profile.images_per_object)
    data = load_study_data(data_plan)
    seed = args.seed or 0
    try:
        probed = ProbedSpace.plan(args.space, SpaceContext(max_epochs=profile.max_epochs, seed=seed),
                                  weights_policy(args, profile), fallback=profile.name != "full",
                                  image_size=data.resolution)
    except (ConfigError, ValueError) as err:
        raise UsageError(f"space '{args.space}' produces an invalid config: {err}") from None
    if probed.missing and profile.name == "full":
        raise UsageError(f"--profile full needs ImageNet weights missing for {', '.join(probed.missing)}: "
                         + " | ".join(probed.missing.values()))
    notes = []
    if probed.missing:
        loaded = sorted(set(probed.wanted) - set(probed.missing))
        notes.append(f"ImageNet weights not in the torch cache for {', '.join(probed.missing)}: those backbones run "
                     f"with random weights" + (f"; ImageNet weights used for {', '.join(loaded)}" if loaded else ""))
    max_t = probed.max_epochs
    plan = SearchPlan(
        name=name, space=args.space, scientific=scientific_parameter(args.space),
        sampler=args.sampler or defaults.SAMPLER, seed=seed,
        num_samples=args.num_samples or profile.num_samples,
        scheduler=SchedulerPlan(args.scheduler or defaults.SCHEDULER, args.grace_period or defaults.grace_period(max_t),
                                args.reduction_factor or defaults.REDUCTION_FACTOR, max_t),
        recheck=RecheckPlan(profile.recheck_top if args.recheck_top is None else args.recheck_top,
                            args.recheck_seeds or profile.recheck_seeds),
        resources=resources, data=data_plan, profile=profile.name, max_epochs=probed.ctx.max_epochs,
        pretrained=tuple(sorted(probed.ctx.pretrained)),
        # ImageNet checkpoints the driver resolved; trials get them through Ray's object store.
        imagenet=tuple(sorted(set(probed.found) & probed.ctx.pretrained)),
        tracking=TrackingPlan(uri=args.tracking_uri), notes=tuple(notes), git_commit=git_commit(),
        data_fingerprint=data.fingerprint, image_size=data.resolution,
        # What a model must beat to be more than object recognition, on the inner split trials score on.
        references=reference_scores(data, complete({}), final=False),
    )
    return plan, data, probed


# Flags a resume takes from the user (the rest are the study's: given again, they must agree with it).
RESUME_FLAGS = ("recheck_top", "recheck_seeds", "address", "storage", "name", "resume", "offline", "weights_mirror",
                "time_budget")


def study_values(plan: SearchPlan, folder: Path) -> dict:
    """What each flag of ``trainables.search`` was for the study: flag -> value."""
    r, s, d = plan.resources, plan.scheduler, plan.data
    return {"space": plan.space, "num_samples": plan.num_samples, "sampler": plan.sampler, "seed": plan.seed,
            "scheduler": s.name, "grace_period": s.grace_period, "reduction_factor": s.reduction_factor,
            "gpus_per_trial": r.gpus_per_trial, "cpus_per_trial": r.cpus_per_trial,
            "max_concurrent": r.max_concurrent, "memory_per_trial": r.memory_per_trial_gib,
            "checkpoint_interval": r.checkpoint_interval, "tracking_uri": plan.tracking_uri(folder),
            "data": d.source, "data_seed": d.data_seed, "resolution": d.resolution,
            "images_per_object": d.images_per_object, "profile": plan.profile, "max_epochs": plan.max_epochs}


def resume_plan(args) -> tuple[SearchPlan, Path, list[str]]:
    """The saved plan of the study to continue, with the flags a resume may change; UsageError when there is
    nothing to resume or a flag contradicts the study.

    Returns the plan, the study folder, and the flags given that the study already had (ignored).
    A finished search resumes only to run a re-check asked for with ``--recheck-top``.
    """
    check_numbers(args)
    name = args.name or args.space
    if not name:
        raise UsageError("--resume needs --name or --space to know which search to continue")
    folder = args.storage / name
    if not (folder / SEARCH_FILE).is_file():
        raise UsageError(f"nothing to resume: no search '{name}' in {args.storage}")
    plan = read_plan(folder)
    check_resumable(plan, folder)
    if (folder / OPTUNA_FILE).is_file():  # absent when the study stopped before its searcher started
        load_optuna_study(folder, plan.name)  # a damaged optuna.db is named here, before anything runs
    given = {k: v for k, v in vars(args).items() if v not in (None, False) and k not in RESUME_FLAGS}
    if given.get("data") and given["data"] != "synthetic":
        given["data"] = str(Path(given["data"]).resolve())
    if given.get("profile") == "auto":
        given.pop("profile")
    own = study_values(plan, folder)
    for flag, value in sorted(given.items()):
        if flag in own and own[flag] != value:
            raise UsageError(f"--{flag.replace('_', '-')} {value} contradicts study '{name}' ({own[flag]}); "
                             "a resume continues the study as it was planned")
    recheck = RecheckPlan(plan.recheck.top if args.recheck_top is None else args.recheck_top,
                          args.recheck_seeds or plan.recheck.seeds or defaults.RECHECK_SEEDS)
    if plan.finished and not args.recheck_top:
        raise UsageError(f"nothing to resume: search '{name}' finished (--recheck-top K re-checks its K best)")
    check_tracking_uri(plan.tracking_uri(folder))
    # A finished study resumed for a re-check is no longer finished (a stop during it leaves it to resume again).
    return replace(plan, recheck=recheck, finished=plan.finished and recheck == plan.recheck), folder, sorted(given)


def load_study_data(d: DataPlan) -> ITData:
    """The data set of a study, loaded once by the driver and validated (trials get it through the object store)."""
    return load_dataset(d.source, SyntheticSpec(d.data_seed, d.resolution, d.images_per_object))


def resumed_study(args) -> tuple[SearchPlan, Path, list[str], ITData, ProbedSpace]:
    """A resumed study's plan, folder and ignored flags (:func:`resume_plan`), its data (the same as before, or
    refused) and its space, probed once in its saved context."""
    plan, folder, ignored = resume_plan(args)
    # Every file the resume reads, read first: a damaged one is named before the lock is taken or Ray starts.
    check_ray_state(folder)
    load_trials(folder)
    if not args.address:  # a private Ray instance: this machine's CPUs and GPUs are all it will have
        check_this_machine(plan.resources)
    data = load_study_data(plan.data)
    if plan.data_fingerprint and data.fingerprint != plan.data_fingerprint:
        raise UsageError(f"the data of search '{plan.name}' changed since it started (fingerprint "
                         f"{data.fingerprint}, was {plan.data_fingerprint}): start a new search")
    try:
        probed = ProbedSpace.of(plan.space, plan.context(), data.resolution)
    except (ConfigError, ValueError) as err:
        raise UsageError(f"space '{plan.space}' produces an invalid config: {err}") from None
    return plan, folder, ignored, data, probed


def announce(plan: SearchPlan) -> None:
    d = plan.data
    log.info("%s", profile_message(d.source, Profile(plan.profile, d.resolution, d.images_per_object, plan.max_epochs,
                                                     plan.num_samples, plan.recheck.top, plan.recheck.seeds)))
    log.info("study %s: %d trials, sampler %s", plan.space, plan.num_samples, plan.sampler)
    log.info("%s", describe(plan.scheduler))
    rc = plan.recheck
    log.info("%s", f"then a re-check: the {rc.top} best completed configs trained again with {rc.seeds} new seeds "
             "each; the best mean is exported" if rc.top else "no re-check (--recheck-top 0): the best single "
             "trial is exported")
    for note in plan.notes:
        log.info("%s", note)


def print_summary(plan: SearchPlan, folder: Path, summary, seconds: float) -> None:
    c = summary.counts
    print(f"\nsearch '{plan.name}' ({plan.space}) done in {seconds / 60:.1f} min: "
          f"{c['completed']} completed, {c['pruned']} pruned, {c['failed']} failed"
          + (f", {c['running']} unfinished" if c["running"] else ""))
    first = summary.first
    if first:
        fate = (f"completed, rank {first['rank']} of {first['of']} completed" if first["status"] == "completed"
                else f"{first['status']} after {first['epochs']} epoch{'s' * (first['epochs'] != 1)}")
        score = "" if first["value"] is None else f", best inner EV {first['value']:.4f}"
        print(f"the space's first point (the report's recipe), trial {first['trial_id']}: {fate}{score}")
    rows = summary.recheck
    if rows:
        if rows[0].deterministic:
            print(f"re-check of the {len(rows)} best configs: a seed changes nothing in this family, so they are "
                  "compared by a paired bootstrap over the inner split's objects (inner-validation EV):")
        else:
            print(f"re-check of the {len(rows)} best config{'s' * (len(rows) > 1)}, raced over new seeds, each run to "
                  f"its end: {runs_spent(rows)} runs of at most {len(rows) * plan.recheck.seeds} (inner-validation EV; "
                  "the search's own run, selected for being high, is left out of the mean):")
        print("\n".join("  " + line for line in format_table(rows)))
    best = summary.best
    if best:
        p = best["provenance"]
        # The study's own choices; the exported file holds the complete config.
        uses = get_family(best["model"]).uses_backbone(best)
        shown = {**({"backbone": best["backbone"]} if uses else {}), **p.get("sampled", {})}
        epochs = p["epochs_reached"]
        how = ("" if not rows else f"re-check {rows[0].mean:.4f} +- {rows[0].se:.4f} (bootstrap over images); "
               if rows[0].deterministic else f"best re-check mean {rows[0].mean:.4f} +- {rows[0].se:.4f} over "
               f"{rows[0].n} seed{'s' * (rows[0].n > 1)}; ")
        print(f"exported trial {p['trial_id']}: {how}inner-validation EV {p['value']:.4f} in the search, after "
              f"{epochs} epoch{'s' * (epochs > 1)}")
        print("sampled: " + json.dumps(shown))
        print(f"exported: {summary.best_path}  (train it: python -m trainables.train --config {summary.best_path})")
        if summary.best_weights:
            print(f"its weights (best epoch): {summary.best_weights}")
    if plan.references:
        print("for scale, on the same inner split: " + ", ".join(
            f"{name} EV {ev:.4f}" for name, ev in plan.references.items()) + " (labels only, no pixels)")
    for note in summary.notes:
        print(note)
    print(f"trials table: {folder / TRIALS_FILE}")
    uri = plan.tracking_uri(folder)
    page = runs_url(uri, plan.tracking.experiment_id, OBJECTIVE, view_key(OBJECTIVE))  # best trial first
    if uri.startswith("sqlite:"):
        print(f"browse the trials: mlflow ui --backend-store-uri {uri}  (then open {page})")
    else:
        print(f"browse the trials: {page}")


class StopRequest:
    """SIGTERM ends a search as Ctrl-C does: Ray Tune stops the trials and saves its state, the summary says how to
    resume. The request is also kept, because a KeyboardInterrupt that arrives while a library imports or Ray starts
    can be swallowed there: :meth:`check` stops the search at its next step."""

    requested = False

    def __call__(self, *_) -> None:
        self.requested = True
        os.kill(os.getpid(), signal.SIGINT)

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt


STOP = StopRequest()


def main(argv: list[str] | None = None) -> int:
    begun = time.time()
    args = parse_args(argv)
    setup_logging()
    STOP.requested = False  # a request belongs to one run (main may be called again in the same process)
    previous = signal.signal(signal.SIGTERM, STOP)
    try:
        return launch(args, begun)
    except KeyboardInterrupt:
        print("\nsearch interrupted before it started; nothing of it was changed")
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def launch(args, begun: float) -> int:
    """Check the plan and data, take the study's lock, run the study."""
    try:
        if args.address:  # Ray would retry an unreachable cluster for minutes
            check_reachable(args.address)
        StudyLock.check_free(args.storage / (args.name or args.space or ""))  # a second launcher says who runs it
        # The data are loaded (and validated) and the space probed before Ray starts or anything is written: a bad
        # file or space costs nothing.
        if args.resume:
            plan, folder, ignored, data, probed = resumed_study(args)
        else:
            (plan, data, probed), folder, ignored = new_study(args), args.storage / (args.name or args.space), []
        # One launcher per study, taken before anything is written (a second one stops here, naming the first).
        lock = StudyLock(folder)
        if not args.resume and (folder / SEARCH_FILE).exists():
            lock.release()
            raise UsageError(f"a search named '{plan.name}' exists in {args.storage}; use --resume, or another --name")
    except (UsageError, DataError, PlanError, StudyDamaged) as err:
        fail(str(err))
    try:
        return run(args, plan, folder, data, probed, ignored, begun, lock)
    finally:
        lock.release(remove_folder=not (folder / SEARCH_FILE).exists())


def run(args, plan: SearchPlan, folder: Path, data: ITData, probed: ProbedSpace, ignored: list[str], begun: float,
        lock) -> int:
    """The study, once its plan and data are checked and its lock is held."""
    if args.resume:
        log.info("resuming search '%s' from %s", plan.name, folder.resolve())
        if ignored:
            log.info("resume ignores %s: the study's own settings", ", ".join(f"--{f.replace('_', '-')}" for f in ignored))
    else:
        announce(plan)
    log.info("data %s", data.describe())
    set_ray_environment(args.address)
    # Ray starts in a thread of its own while this one imports the libraries and opens the stores.
    ray_start = RayStart(args.address)
    try:
        from trainables.study.run import runner  # imports Ray: only once its environment is set
        from trainables.study.tracking.store import relocate_artifacts  # MLflow: 1.5 s a refused command does not pay

        STOP.check()
        options = RunOptions(deadline=begun + parse_duration(args.time_budget) if args.time_budget else None,
                             address=args.address)
        study = runner.Study(plan, folder, data, probed, options)
        if args.resume and plan.tracking.uri is None:
            moved = relocate_artifacts(study.tracking_uri, plan.tracking.experiment_id)
            if moved:
                log.info("the study has moved: its MLflow artifacts now go beside %s (they went to %s)",
                         study.tracking_uri.removeprefix("sqlite:///"), moved)
        start = time.perf_counter()
        try:
            study.start(new=not args.resume, ray_start=ray_start)
        except UsageError as err:
            fail(str(err))
        STOP.check()
        study.run_search(resume=args.resume)
        STOP.check()
        study.run_recheck()
        summary = study.finish()
    except KeyboardInterrupt:
        if not (folder / SEARCH_FILE).exists():
            print("\nsearch interrupted before it started; nothing was written")
            return 1
        print(f"\nsearch interrupted; continue it with: python -m trainables.search --resume --name {plan.name} "
              f"--storage {args.storage}")
        return 1
    finally:
        ray_start.close()
    print_summary(study.plan, folder, summary, time.perf_counter() - start)
    if not summary.finished:
        why = "its time budget cut the study" if summary.notes else "search interrupted"
        print(f"{why}; continue it with: python -m trainables.search --resume --name {plan.name} "
              f"--storage {args.storage}")
        return 0 if summary.notes else 1
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is closed by now (Ray shut down, MLflow runs ended, the lock released): the interpreter's own
    # teardown of Ray's and torch's native state would add about 3 s to every search.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
