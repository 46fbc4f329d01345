"""The report's answer from its studies: Table 1 and Figures 1-2, each row final-trained over seeds on Ray.

    python -m trainables.ladder [--studies ridge_pixels,layer_sweep,shallow_cnn,vgg_depth,decoder_head]
                                [--seeds S] [--storage DIR] [data, profile, cluster and tracking flags]

Every study of the ladder runs on one data set (``--data``, or the size the profile
chooses for the ladder, :data:`LADDER_SIZES`): a study missing from ``--storage`` is
run, an unfinished one resumed, each with the search's own code and display. Each
study gives its rows (:mod:`trainables.study.export.rungs`: the best config per value of
its ladder axes, or its exported config); every row is trained on the official
validation set over seeds (networks: 3 by default; readouts, which a seed does not
change: 1), as Ray trials with the search's resources (:mod:`trainables.study.run.finals`);
a network row's seeds averaged are an ensemble row, and so are the re-checked configs
of the network study with the best inner-validation EV (the re-check's mean), trained
over the same seeds beside every other run. A run already done (same config, seed and data) is not
run again. The answer goes to ``<storage>/ladder/`` (``table.md``, ``table.csv``,
``sites.csv``, ``steps.csv``, ``layers.png``, ``sites.png``, ``rdms.png``, ``index.html``) and to MLflow
(one parent run, a child per row); the table is printed at the end.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from search_spaces import SEARCH_SPACES, ladder_axes
from trainables.cli import (add_data_arguments, add_weights_arguments, check_tracking_uri, load_data,
                            profile_message, resolve_data_arguments)
from trainables.core.config import ConfigError
from trainables.core.layout import (FEATURES_DIR, LADDER_CONFIGS, LADDER_DIR, LADDER_RAY, LADDER_RUNS, METRICS_FILE,
                                    PREDICTIONS_FILE, SEARCH_FILE, SEED_DIR, default_tracking_uri)
from trainables.core.usage import Parser, UsageError, check_writable, fail, quiet_libraries, setup_logging
from trainables.data.schema import DataError, ITData
from trainables.fitting.families import complete, config_of, get_family, reference_scores
from trainables.study.export.best_config import exported, rechecked
from trainables.study.export.rungs import NoRungs, RungConfig, missing_rows, study_rungs
from trainables.study.plan.pace import Pace, measure, minutes
from trainables.study.plan.search_plan import PlanError, ResourcePlan, check_resumable, read_plan
from trainables.study.records.ray_state import check_ray_state
from trainables.study.records.trainings import TrainingDamaged, read_training
from trainables.study.records.trials import StudyDamaged, StudyNotFound, TrialRecord, load_trials
from trainables.study.run.cluster import RayStart, check_reachable, set_ray_environment

log = logging.getLogger("trainables.ladder")
# The report's ladder, bottom to top: a linear map of the pixels, readouts of each layer of an ImageNet network
# (pretrained against random weights), a small CNN trained from scratch, fine-tuned networks.
DEFAULT_STUDIES = ("ridge_pixels", "layer_sweep", "shallow_cnn", "vgg_depth", "decoder_head")
# Seeds per row when --seeds is not given: a network's fit depends on its seed, a readout's does not.
NETWORK_SEEDS = 3


@dataclass(frozen=True)
class LadderSize:
    """The one data set a profile's ladder runs on, and what its network studies are given.

    Attributes
    ----------
    resolution, images_per_object : int
        The synthetic data set's size (every study's).
    max_epochs : int or None
        The cap on every recipe's epochs (a network's search trials and final trainings).
    network_samples : int or None
        Trials of a study without ladder axes (its rows are its export); a study with axes keeps its own.
    """

    resolution: int
    images_per_object: int
    max_epochs: int | None = None
    network_samples: int | None = None


# The smoke ladder on a 2-core laptop within its time goal (benchmarks/RESULTS.md, "Ladder"): the networks' own size
# (32 px, 16 images per object), recipes capped at 3 epochs and 4 trials per network study. It trades the science:
# ImageNet readouts score lower at 32 px than at 64 px, 3-epoch recipes stop early, and the validation set is about
# one image per object. The full profile keeps its own sizes (224 px, no cap, 64 trials).
LADDER_SIZES = {"smoke": LadderSize(32, 16, max_epochs=3, network_samples=4)}


def parse_args(argv):
    p = Parser(prog="python -m trainables.ladder", description=__doc__.split("\n")[0])
    p.add_argument("--studies", default=",".join(DEFAULT_STUDIES),
                   help=f"the studies of the ladder, by name (default: {','.join(DEFAULT_STUDIES)})")
    p.add_argument("--seeds", type=int,
                   help=f"final trainings per network row (default {NETWORK_SEEDS}; a readout trains once)")
    add_data_arguments(p)
    add_weights_arguments(p)
    p.add_argument("--storage", type=Path, default=Path("runs"), help="folder of the studies (default ./runs)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<storage>/mlflow.db)")
    p.add_argument("--address", help="join an existing Ray cluster (e.g. 127.0.0.1:6379)")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per trial and final training (default 1)")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial (fractional allowed; default: 1 with a GPU)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: what CPUs, GPUs and memory allow)")
    return p.parse_args(argv)


class LadderStopped(RuntimeError):
    """The ladder could not go on (a study did not finish, final trainings did not end); the message says how to
    continue."""


@dataclass
class Study:
    """A study of the ladder: its name, folder, whether it is to be run or resumed, and once it finished, its rows
    and its trials' paces."""

    name: str
    folder: Path
    action: str  # "run", "resume" or "ready"
    rungs: list = field(default_factory=list)
    paces: dict = field(default_factory=dict)

    def read(self) -> None:
        """Its rows and its trials' paces, read once it finished (NoRungs without a completed trial)."""
        trials = load_trials(self.folder)
        self.rungs = study_rungs(self.folder, trials)
        self.paces = paces_of(trials)
        for missing in missing_rows(self.folder, self.rungs):
            log.warning("study %s has no completed trial for %s: that row is missing", self.name, missing)


def paces_of(trials: list[TrialRecord]) -> dict[str, Pace]:
    """Trial id -> its pace (a final training of its config takes about as long)."""
    return {t.trial_id: pace for t in trials if t.results and (pace := measure([t.pace()])) is not None}


def check_flags(args) -> None:
    """Numbers and names the ladder can refuse before it loads anything."""
    args.studies = [s.strip() for s in args.studies.split(",") if s.strip()]
    if not args.studies:
        raise UsageError("--studies names no study")
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
    for flag, low in (("cpus_per_trial", 0), ("max_concurrent", 0)):
        if getattr(args, flag) is not None and getattr(args, flag) <= low:
            raise UsageError(f"--{flag.replace('_', '-')} must be > {low}, got {getattr(args, flag)}")
    if args.gpus_per_trial is not None and args.gpus_per_trial < 0:
        raise UsageError(f"--gpus-per-trial must be >= 0, got {args.gpus_per_trial}")
    for name in args.studies:  # named before the data load: an unknown study costs nothing
        if name not in SEARCH_SPACES and not (args.storage / name / SEARCH_FILE).exists():
            raise UsageError(f"unknown study '{name}': no search of that name in {args.storage} and no space of that "
                             f"name (spaces: {', '.join(SEARCH_SPACES)})")


def check_synthetic_data(args) -> None:
    """A study in ``--storage`` drawn from other synthetic data than the ladder's flags ask for, refused before the
    ladder draws its own (a recordings file is checked by its fingerprint once loaded)."""
    if args.data != "synthetic":
        return
    asked = (args.data_seed, args.resolution, args.images_per_object)
    for name in args.studies:
        if (args.storage / name / SEARCH_FILE).exists():
            d = read_plan(args.storage / name).data
            if d.source == "synthetic" and (d.data_seed, d.resolution, d.images_per_object) != asked:
                raise UsageError(
                    f"study '{name}' in {args.storage} ran on synthetic data of seed {d.data_seed} at {d.resolution} "
                    f"px, {d.images_per_object} images per object; the ladder's are seed {asked[0]} at {asked[1]} px, "
                    f"{asked[2]} images per object: every row must be scored on one data set (give the ladder the "
                    "study's data flags, or another --storage)")


def check_studies(args, data: ITData) -> list[Study]:
    """Each study of ``--studies``: to run (missing), to resume (unfinished) or ready (finished, its rows read); a
    one-line error (UsageError, PlanError, StudyDamaged, NoRungs) for a damaged study folder, one this release cannot
    resume, a finished study with no completed trial, or a study run on other data than the ladder's."""
    studies = []
    for name in args.studies:
        folder = args.storage / name
        if not (folder / SEARCH_FILE).exists():  # a space's name (check_flags refused any other)
            studies.append(Study(name, folder, "run"))
            continue
        plan = read_plan(folder)
        load_trials(folder)  # a damaged trial folder is named here, before any work
        if plan.data_fingerprint and plan.data_fingerprint != data.fingerprint:
            raise UsageError(f"study '{name}' in {args.storage} ran on data {plan.data_fingerprint}, the ladder's data "
                             f"are {data.fingerprint}: every row must be scored on one data set (give the ladder the "
                             "study's data flags, or another --storage)")
        study = Study(name, folder, "ready" if plan.finished else "resume")
        if plan.finished:
            study.read()  # a study with no completed trial is refused here
        else:
            check_resumable(plan, folder)
            check_ray_state(folder)
        studies.append(study)
    return studies


def study_argv(study: Study, args) -> list[str]:
    """The search's flags for a study of the ladder: for a new one the ladder's data, profile, cluster and tracking
    flags (and its size's trials for a network study); for a resumed one only what a resume takes."""
    argv = ["--storage", str(args.storage)] + (["--address", args.address] if args.address else []) + (
        ["--offline"] if args.offline else []) + (["--weights-mirror", args.weights_mirror] if args.weights_mirror
                                                  else [])
    if study.action == "resume":
        return ["--resume", "--name", study.name] + argv
    argv = ["--space", study.name, "--name", study.name] + argv + [
        "--data", args.data, "--data-seed", str(args.data_seed), "--profile", args.profile,
        "--resolution", str(args.resolution), "--images-per-object", str(args.images_per_object)]
    for flag in ("max_epochs", "tracking_uri", "cpus_per_trial", "gpus_per_trial", "max_concurrent"):
        if getattr(args, flag) is not None:
            argv += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    size = LADDER_SIZES.get(args.profile_name)
    if size and size.network_samples and not ladder_axes(study.name):
        argv += ["--num-samples", str(size.network_samples)]
    return argv


def run_studies(studies: list[Study], args) -> None:
    """Run the missing studies and resume the unfinished ones, one after another, with the search's own code; read
    each one's rows. A study the search refuses stops the ladder with the search's one line (exit 2)."""
    from trainables import search  # the search command: its code, its display, its summary

    for study in studies:
        if study.action != "ready":
            log.info("study %s: %s", study.name, "resuming it" if study.action == "resume" else "running it")
            try:
                code = search.main(study_argv(study, args))
            except SystemExit as refused:  # the search's one-line refusal, already printed
                sys.exit(refused.code)
            if code:
                raise LadderStopped(f"study '{study.name}' did not finish (exit {code}); start the ladder again to "
                                    "continue it")
            study.read()


def config_file(storage: Path, rung: RungConfig) -> Path:
    """Where a row's config is written (Table 1's source column names it)."""
    return storage / LADDER_DIR / LADDER_CONFIGS / rung.study / f"{rung.slug}.json"


def final_runs(rung: RungConfig, paces: dict, seeds: int | None, storage: Path, fingerprint: str):
    """A row's final trainings, its config written beside the ladder: (to run, done before, left unfinished by a
    stop)."""
    from trainables.study.run.finals import FinalRun, is_done  # Ray: imported once its environment is set

    path = config_file(storage, rung)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rung.config, indent=2) + "\n")
    config = config_of(rung.config)
    todo, done, redo = [], [], []
    for seed in range(config["seed"], config["seed"] + (1 if rung.deterministic else seeds or NETWORK_SEEDS)):
        out = storage / LADDER_DIR / LADDER_RUNS / rung.study / rung.slug / SEED_DIR.format(seed=seed)
        run = FinalRun(f"{rung.study}/{rung.slug}", {**config, "seed": seed}, out, rung.config["provenance"],
                       label=f"{rung.title}, seed {seed}", pace=paces.get(rung.trial_id))
        (done if is_done(run, fingerprint) else redo if out.exists() else todo).append(run)
    return todo, done, redo


def inner_score(rung: RungConfig) -> float:
    """A row's inner-validation EV as its study measured it: the re-check's mean of its trial where the study raced
    it, else the search's value (a search's best single run, selected for being high)."""
    provenance = rung.config["provenance"]
    raced = {row["trial_id"]: row["mean"] for row in (provenance.get("recheck") or {}).get("table", [])}
    return raced.get(rung.trial_id, provenance["value"])


def top_configs(study: Study, best: RungConfig) -> list[RungConfig]:
    """The study's re-checked configs besides its row's (the re-check's table, best mean first), as rows of their
    own: with the row, the ensemble of the study's top configs."""
    plan, trials = read_plan(study.folder), load_trials(study.folder)
    by_id = {t.trial_id: t for t in trials}
    others = [row.trial.trial_id for row in rechecked(plan, trials) if row.trial.trial_id != best.trial_id]
    return [RungConfig(study.name, best.group, f"re-check #{i + 2}: trial {trial_id}", {}, trial_id, "re-check",
                       exported(plan, study.folder, by_id[trial_id]), best.deterministic)
            for i, trial_id in enumerate(others)]


def analysed(rung: RungConfig, runs: list, storage: Path):
    """The ladder analysis's :class:`~analysis.ladder.rungs.Rung` of a row whose final trainings ended: each run's
    validation predictions and metrics, read from its folder."""
    from analysis.ladder.rungs import Run, Rung  # the answer's analysis: numpy and matplotlib, for the end only

    return Rung(rung.study, rung.group, rung.label, rung.axes, rung.trial_id, config_file(storage, rung),
                rung.source, rung.deterministic,
                [Run(r.config["seed"], r.out, np.load(r.out / PREDICTIONS_FILE.format(part="val")),
                     read_training(r.out / METRICS_FILE)) for r in runs], read_plan(storage / rung.study).notes)


def main(argv: list[str] | None = None) -> int:
    begun = time.time()
    args = parse_args(argv)
    setup_logging()
    try:
        check_flags(args)
        if args.address:
            check_reachable(args.address)
        args.storage = args.storage.resolve()  # Ray's trials write the runs' folders from a working folder of their own
        profile = resolve_data_arguments(args, {name: {"resolution": size.resolution,
                                                       "images_per_object": size.images_per_object}
                                                for name, size in LADDER_SIZES.items()})
        args.profile_name = profile.name
        size = LADDER_SIZES.get(profile.name)
        if args.max_epochs is None and size is not None and size.max_epochs is not None:
            args.max_epochs = size.max_epochs
        args.resolution, args.images_per_object = profile.resolution, profile.images_per_object
        check_writable(args.storage / LADDER_DIR, "--storage")
        tracking_uri = args.tracking_uri or default_tracking_uri(args.storage)
        check_tracking_uri(tracking_uri)
        check_synthetic_data(args)
        data = load_data(args, profile)
        studies = check_studies(args, data)
    except (UsageError, DataError, PlanError, StudyDamaged, StudyNotFound, NoRungs, ConfigError) as err:
        fail(str(err))
    log.info("%s", profile_message(args.data, profile))
    log.info("the ladder's data: %s", data.describe())
    try:
        run_studies(studies, args)
        studies_s = time.time() - begun
        return answer(args, data, studies, tracking_uri, begun, studies_s)
    except LadderStopped as err:
        print(f"\n{err}")
        return 1
    except (UsageError, StudyDamaged, NoRungs, ConfigError) as err:
        fail(str(err))


def answer(args, data: ITData, studies: list[Study], tracking_uri: str, begun: float, studies_s: float) -> int:
    """Train every row on Ray (and the best network study's top configs), gather the answer, write and print it."""
    set_ray_environment(args.address)
    # Ray, MLflow and the final training (matplotlib), once Ray's environment is set: a refused ladder pays none.
    from analysis.ladder.output import write_ladder
    from analysis.ladder.rungs import Ensemble, ValData
    from analysis.ladder.steps import step_lines
    from analysis.ladder.table import format_table
    from trainables import train
    from trainables.study.run.finals import OUT_KEY, ROW_KEY, run_finals
    from trainables.study.tracking.ladder_runs import LadderRuns, LogFinals
    from trainables.study.tracking.store import data_input
    from trainables.study.tracking.ui import runs_url, view_key

    quiet_libraries()
    rows = [(study, rung, final_runs(rung, study.paces, args.seeds, args.storage, data.fingerprint))
            for study in studies for rung in study.rungs]
    # The best network study's re-checked configs, each over the same seeds: with its row, their ensemble. Chosen
    # before any final training, by the studies' own inner-validation evidence, so that the validation set the rows
    # are scored on picks nothing, and every run shares one phase.
    networks = [(study, rung, plan) for study, rung, plan in rows if not rung.deterministic]
    members = []
    if networks:
        best_study, best, best_plan = max(networks, key=lambda row: inner_score(row[1]))
        members = [(rung, final_runs(rung, best_study.paces, args.seeds, args.storage, data.fingerprint))
                   for rung in top_configs(best_study, best)]
    plans = [plan for *_, plan in rows] + [plan for _, plan in members]
    todo = [r for plan in plans for r in plan[0] + plan[2]]
    done = [r for plan in plans for r in plan[1]]
    redo = sum(len(plan[2]) for plan in plans)
    log.info("final trainings: %d rows, %d runs: %d done before, %d to run%s", len(rows) + len(members),
             len(todo) + len(done), len(done), len(todo), f" ({redo} left unfinished by a stop, run again)" if redo
             else "")
    mlflow_runs = LadderRuns(tracking_uri, data.fingerprint, data_input(data.name, data.fingerprint, args.data))
    # A row's MLflow run is named so.
    titles = {f"{rung.study}/{rung.slug}": rung.title for rung in [r for _, r, _ in rows] + [r for r, _ in members]}
    for run in done:  # done by a ladder stopped before it logged them
        mlflow_runs.log_training(run.row, titles[run.row], run.out)
    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (1.0 if torch.cuda.is_available() else 0.0)
    resources = ResourcePlan(args.cpus_per_trial or 1.0, gpus, args.max_concurrent)
    families = {rung.config["model"]: get_family(rung.config["model"]) for _, rung, _ in rows}
    ray_start = RayStart(args.address)
    finished = False
    try:
        ray_start.wait()
        started = time.time()
        imagenet = sorted({r.config["backbone"] for r in todo if r.config["weights"] == "imagenet"
                           and get_family(r.config["model"]).uses_backbone(r.config)})
        ended = run_finals(todo, data, families, train.train_one, resources, args.storage / LADDER_DIR, LADDER_RAY,
                           args.storage / FEATURES_DIR, tuple(imagenet),
                           [LogFinals(mlflow_runs, titles, OUT_KEY, ROW_KEY)], "final trainings")
        if ended < len(todo):
            raise LadderStopped(f"{len(todo) - ended} final trainings did not end; start the ladder again to run them "
                                "(those that ended are kept)")
        finals_s = time.time() - started
        log.info("final trainings: %d runs ended in %s", len(todo), minutes(finals_s))
        val = ValData(data.spikes_val, data.object_val, data.noise_ceiling_val,
                      reference_scores(data, complete({}), final=True), data.fingerprint)
        rungs = [analysed(rung, sum(plan, []), args.storage) for _, rung, plan in rows]
        ensembles = []
        if members:
            runs = [run for rung, plan in [(best, best_plan), *members] for run in analysed(rung, sum(plan, []),
                                                                                          args.storage).runs]
            ensembles.append(Ensemble(f"top {1 + len(members)} configs x {args.seeds or NETWORK_SEEDS} seeds",
                                      best_study.name, runs))
        written = write_ladder(rungs, val, args.storage / LADDER_DIR, ensembles)
        log_answer(mlflow_runs, written, [rung for _, rung, _ in rows], args.storage)
        finished = True
    except (TrainingDamaged, OSError, ValueError) as err:  # a run's files, read back for the answer
        fail(f"the ladder's final trainings cannot be read back: {err}")
    finally:
        ray_start.close()
        mlflow_runs.close(finished)
    print("\n" + "\n".join(format_table(written.rows, val)))
    if written.steps:
        print("the report's ordering, step by step (EV %; the step's paired 95 % interval):")
        print("\n".join("  " + line for line in step_lines(written.steps)))
    print(f"\nladder: {len(rows)} rows; studies {minutes(studies_s)}, final trainings {minutes(finals_s)} "
          f"({len(todo)} trained, {len(done)} done before); in all {minutes(time.time() - begun)}")
    print(f"page: {written.page}")
    page = runs_url(tracking_uri, mlflow_runs.experiment, "val_ev", view_key("val_ev"))
    print(f"browse the runs: mlflow ui --backend-store-uri {tracking_uri}  (then open {page})"
          if tracking_uri.startswith("sqlite:") else f"browse the runs: {page}")
    return 0


def log_answer(mlflow_runs, written, rungs: list[RungConfig], storage: Path) -> None:
    """The ladder's statistics on its MLflow runs (a row's on its rung's run, its seeds' ensemble's there too as
    ``ensemble_*``, the top configs' ensemble's on the parent), its files as the parent's artifacts."""
    ids = {str(config_file(storage, r)): (f"{r.study}/{r.slug}", r.title) for r in rungs}
    for row in written.rows:
        values = {"val_ev": row.ev, "val_ev_sd": row.ev_sd, "val_ev_low": row.interval[0],
                  "val_ev_high": row.interval[1], "val_r_mean": row.r, "val_ev_ceiled": row.ceiled}
        if row.kind != "model":
            values = {f"ensemble_{k}": v for k, v in values.items()}
            if row.gain is not None:
                values.update(ensemble_gain=row.gain.value, ensemble_gain_low=row.gain.low,
                              ensemble_gain_high=row.gain.high)
        found = ids.get(row.config)
        mlflow_runs.log_metrics(mlflow_runs.rung(*found) if found else mlflow_runs.parent, values)
    for path in written.files:
        mlflow_runs.client.log_artifact(mlflow_runs.parent, str(path))


if __name__ == "__main__":
    code = main()
    # Everything is closed by now: the interpreter's own teardown of Ray's and torch's native state would add seconds.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
