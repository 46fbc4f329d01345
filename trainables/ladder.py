"""The report's answer from its studies: Table 1 and Figures 1-2, each row final-trained over seeds on Ray.

    python -m trainables.ladder [--studies ridge_pixels,layer_sweep,shallow_cnn,vgg_depth,decoder_head]
                                [--seeds S] [--storage DIR] [data, profile, cluster and tracking flags]

Every study of the ladder runs on one data set (``--data``, or the size the profile
chooses for the ladder): a study missing from ``--storage`` is run, an unfinished one
resumed, each with the search's own code and display. Each study gives its rows
(:mod:`trainables.study.export.rungs`: the best config per value of its ladder axes, or
its exported config); every row is trained on the official validation set over seeds
(networks: 3 by default; readouts, which a seed does not change: 1), as Ray trials with
the search's resources (:mod:`trainables.study.run.finals`); a row's network seeds
averaged are an ensemble row, and so are the best study's re-checked configs. A run
already done (same config, seed and data) is not run again. The answer goes to
``<storage>/ladder/``: ``table.md``, ``table.csv``, ``sites.csv``, ``layers.png``,
``sites.png``, ``rdms.png`` and ``index.html``; the table is printed at the end, and
MLflow holds one parent run with a child per row.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from search_spaces import SEARCH_SPACES
from trainables.cli import (add_data_arguments, add_weights_arguments, check_tracking_uri, load_data, profile_message,
                            resolve_data_arguments)
from trainables.core.config import ConfigError
from trainables.core.layout import (LADDER_DIR, METRICS_FILE, PREDICTIONS_FILE, SEARCH_FILE, SEED_DIR,
                                    default_tracking_uri)
from trainables.core.usage import Parser, UsageError, check_writable, fail, quiet_libraries, setup_logging
from trainables.data.schema import DataError, ITData
from trainables.fitting.families import complete, config_of, get_family, reference_scores
from trainables.study.export.best_config import exported, rechecked
from trainables.study.export.rungs import NoRungs, RungConfig, missing_rows, study_rungs
from trainables.study.plan.pace import measure, minutes
from trainables.study.plan.search_plan import PlanError, ResourcePlan, read_plan
from trainables.study.records.trainings import read_training
from trainables.study.records.trials import StudyDamaged, StudyNotFound, load_trials
from trainables.study.run.cluster import RayStart, check_reachable, set_ray_environment

log = logging.getLogger("trainables.ladder")
# The report's ladder, bottom to top: a linear map of the pixels, readouts of each layer of an ImageNet network
# (pretrained against random weights), a small CNN trained from scratch, fine-tuned networks.
DEFAULT_STUDIES = ("ridge_pixels", "layer_sweep", "shallow_cnn", "vgg_depth", "decoder_head")
# Seeds per row when --seeds is not given: a network's fit depends on its seed, a readout's does not.
NETWORK_SEEDS = 3


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


@dataclass
class StudyState:
    """A study of the ladder before any work: its name, folder, and whether it is to be run or resumed."""

    name: str
    folder: Path
    action: str  # "run", "resume" or "ready"


def check_studies(args, data: ITData) -> list[StudyState]:
    """Each study of ``--studies``: to run (missing), to resume (unfinished) or ready (finished); a one-line error
    (UsageError, StudyDamaged, NoRungs) for a damaged study folder, a finished study with no completed trial, or a study
    run on other data than the ladder's."""
    states = []
    for name in args.studies:
        folder = args.storage / name
        if not (folder / SEARCH_FILE).exists():  # a space's name (main refused any other)
            states.append(StudyState(name, folder, "run"))
            continue
        plan = read_plan(folder)
        load_trials(folder)  # a damaged trial folder is named here, before any work
        if plan.data_fingerprint and plan.data_fingerprint != data.fingerprint:
            raise UsageError(f"study '{name}' in {args.storage} ran on data {plan.data_fingerprint}, the ladder's data "
                             f"are {data.fingerprint}: every row must be scored on one data set (give the ladder the "
                             "study's data flags, or another --storage)")
        if plan.finished:
            study_rungs(folder)  # a study with no completed trial is refused here
        states.append(StudyState(name, folder, "ready" if plan.finished else "resume"))
    return states


def study_flags(args) -> list[str]:
    """The flags a study of the ladder runs with: the ladder's data, profile, cluster and tracking flags."""
    flags = ["--storage", str(args.storage), "--data", args.data, "--data-seed", str(args.data_seed),
             "--profile", args.profile, "--resolution", str(args.resolution),
             "--images-per-object", str(args.images_per_object)]
    for flag in ("max_epochs", "address", "tracking_uri", "cpus_per_trial", "gpus_per_trial", "max_concurrent",
                 "weights_mirror"):
        value = getattr(args, flag)
        if value is not None:
            flags += [f"--{flag.replace('_', '-')}", str(value)]
    return flags + (["--offline"] if args.offline else [])


def run_studies(states: list[StudyState], args) -> None:
    """Run the missing studies and resume the unfinished ones, one after another, with the search's code."""
    from trainables import search  # the search command: its code, its display, its summary

    for state in states:
        if state.action == "ready":
            log.info("study %s: finished, in %s", state.name, state.folder)
            continue
        argv = (["--resume", "--name", state.name] if state.action == "resume" else
                ["--space", state.name, "--name", state.name]) + study_flags(args)
        log.info("study %s: %s", state.name, "resuming it" if state.action == "resume" else "running it")
        try:
            code = search.main(argv)
        except SystemExit as refused:  # a one-line refusal, already printed
            code = refused.code
        if code:
            raise LadderStopped(f"study '{state.name}' did not finish (exit {code}); the ladder stops: continue it "
                                f"with the same command")


class LadderStopped(RuntimeError):
    """A study of the ladder did not finish."""


def final_runs(rungs: list[RungConfig], seeds: int | None, storage: Path, fingerprint: str):
    """The final trainings of every rung: (runs to do, runs done, runs whose folder a kill left unfinished)."""
    from trainables.study.run.finals import FinalRun, is_done  # Ray: imported once its environment is set

    todo, done, redo = [], [], []
    paces = {}
    for rung in rungs:
        if rung.study not in paces:
            paces[rung.study] = {t.trial_id: measure([t.pace()]) for t in load_trials(storage / rung.study)
                                 if t.results}
        config = config_of(rung.config)
        n = 1 if rung.deterministic else (seeds or NETWORK_SEEDS)
        for seed in range(config["seed"], config["seed"] + n):
            out = storage / LADDER_DIR / "runs" / rung.study / rung.slug / SEED_DIR.format(seed=seed)
            run = FinalRun(f"{rung.study}/{rung.slug}", {**config, "seed": seed}, out, rung.config["provenance"],
                           pace=paces[rung.study].get(rung.trial_id), label=f"{rung.title}, seed {seed}")
            if is_done(run, fingerprint):
                done.append(run)
            else:
                (redo if out.exists() else todo).append(run)
    return todo, done, redo


def main(argv: list[str] | None = None) -> int:
    begun = time.time()
    args = parse_args(argv)
    setup_logging()
    try:
        args.studies = [s.strip() for s in args.studies.split(",") if s.strip()]
        if not args.studies:
            raise UsageError("--studies names no study")
        if args.seeds is not None and args.seeds < 1:
            raise UsageError(f"--seeds must be >= 1, got {args.seeds}")
        for name in args.studies:  # named before the data load: an unknown study costs nothing
            if name not in SEARCH_SPACES and not (args.storage / name / SEARCH_FILE).exists():
                raise UsageError(f"unknown study '{name}': no search of that name in {args.storage} and no space of "
                                 f"that name (spaces: {', '.join(SEARCH_SPACES)})")
        for flag in ("cpus_per_trial", "max_concurrent"):
            if getattr(args, flag) is not None and getattr(args, flag) <= 0:
                raise UsageError(f"--{flag.replace('_', '-')} must be > 0, got {getattr(args, flag)}")
        if args.address:
            check_reachable(args.address)
        profile = resolve_data_arguments(args, {name: {"resolution": size[0], "images_per_object": size[1]}
                                                for name, size in LADDER_SIZES.items()})
        args.resolution, args.images_per_object = profile.resolution, profile.images_per_object
        check_writable(args.storage / LADDER_DIR, "--storage")
        tracking_uri = args.tracking_uri or default_tracking_uri(args.storage)
        check_tracking_uri(tracking_uri)
        data = load_data(args, profile)
        states = check_studies(args, data)
    except (UsageError, DataError, PlanError, StudyDamaged, StudyNotFound, NoRungs, ConfigError) as err:
        fail(str(err))
    log.info("%s", profile_message(args.data, profile))
    log.info("the ladder's data: %s", data.describe())
    try:
        run_studies(states, args)
    except LadderStopped as err:
        print(f"\n{err}")
        return 1
    studies_s = time.time() - begun
    return finish(args, data, tracking_uri, begun, studies_s)


# The smoke profile's ladder: one size for every study (see benchmarks/RESULTS.md, "Ladder").
LADDER_SIZES = {"smoke": (32, 16)}


def rung_configs(args) -> list[RungConfig]:
    """Every study's rows, in the order of ``--studies``; each rung's config written to
    ``<storage>/ladder/configs/<study>/<rung>.json`` (where each row came from)."""
    rungs = []
    for name in args.studies:
        folder = args.storage / name
        try:
            found = study_rungs(folder)
        except NoRungs as err:
            fail(str(err))
        for missing in missing_rows(folder, found):
            log.warning("study %s has no completed trial for %s: that row is missing", name, missing)
        for rung in found:
            path = config_file(args.storage, rung)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(rung.config, indent=2) + "\n")
        rungs += found
    return rungs


def config_file(storage: Path, rung: RungConfig) -> Path:
    return storage / LADDER_DIR / "configs" / rung.study / f"{rung.slug}.json"


def top_configs(storage: Path, study: str, best: RungConfig) -> list[RungConfig]:
    """The study's re-checked configs besides its rung's (the re-check's table, best mean first), as rungs of their
    own: with the rung, the ensemble of the study's top configs."""
    folder = storage / study
    plan, trials = read_plan(folder), load_trials(folder)
    by_id = {t.trial_id: t for t in trials}
    others = [row.trial.trial_id for row in rechecked(plan, trials) if row.trial.trial_id != best.trial_id]
    return [RungConfig(study, best.group, f"re-check #{i + 2}: trial {trial_id}", {}, trial_id, "re-check",
                       exported(plan, folder, by_id[trial_id]), best.deterministic)
            for i, trial_id in enumerate(others)]


def gathered(rung: RungConfig, runs: list, storage: Path):
    """The ladder analysis's :class:`~analysis.ladder.rungs.Rung` of a rung whose final trainings ended: each run's
    validation predictions and metrics, read from its folder."""
    from analysis.ladder.rungs import Run, Rung  # analysis: numpy and matplotlib, for the answer only

    done = [Run(r.config["seed"], r.out, np.load(r.out / PREDICTIONS_FILE.format(part="val")),
                read_training(r.out / METRICS_FILE)) for r in runs]
    return Rung(rung.study, rung.group, rung.label, rung.axes, rung.trial_id, config_file(storage, rung), rung.source,
                rung.deterministic, done)


def finish(args, data: ITData, tracking_uri: str, begun: float, studies_s: float) -> int:
    """Take each study's rows, train them on Ray, gather the answer, write and print it."""
    rungs = rung_configs(args)
    set_ray_environment(args.address)
    # Ray, MLflow and the final training (matplotlib), once Ray's environment is set: a refused ladder pays none.
    from analysis.ladder.output import write_ladder
    from analysis.ladder.rungs import Ensemble, ValData
    from analysis.ladder.table import format_table
    from trainables import train
    from trainables.study.run.finals import OUT_KEY, ROW_KEY, run_finals
    from trainables.study.tracking.ladder_runs import LadderRuns, LogFinals
    from trainables.study.tracking.store import data_input
    from trainables.study.tracking.ui import runs_url

    quiet_libraries()
    plans = [final_runs([rung], args.seeds, args.storage, data.fingerprint) for rung in rungs]
    todo = [r for plan in plans for r in plan[0] + plan[2]]
    done = [r for plan in plans for r in plan[1]]
    redo = [r for plan in plans for r in plan[2]]
    log.info("final trainings: %d rows, %d runs: %d done before, %d to run%s", len(rungs), len(todo + done),
             len(done), len(todo), f" ({len(redo)} left unfinished by a stop)" if redo else "")
    mlflow_runs = LadderRuns(tracking_uri, data.fingerprint, data_input(data.name, data.fingerprint, args.data))
    labels = {f"{r.study}/{r.slug}": r.title for r in rungs}
    for run in done:  # done by a ladder stopped before it logged them
        mlflow_runs.log_training(run.row, labels[run.row], run.out)
    resources = ResourcePlan(args.cpus_per_trial or 1.0, args.gpus_per_trial or 0.0, args.max_concurrent)
    families = {r.config["model"]: get_family(r.config["model"]) for r in rungs}
    ray_start = RayStart(args.address)
    trained = 0
    try:
        ray_start.wait()
        started = time.time()

        def train_all(runs, title):
            labels.update({r.row: labels.get(r.row, r.row) for r in runs})
            imagenet = sorted({r.config["backbone"] for r in runs if r.config["weights"] == "imagenet"
                               and get_family(r.config["model"]).uses_backbone(r.config)})
            ended = run_finals(runs, data, families, train.train_one, resources, args.storage / LADDER_DIR, "ray",
                               args.storage / "features", tuple(imagenet),
                               [LogFinals(mlflow_runs, labels, OUT_KEY, ROW_KEY)], title)
            if ended < len(runs):
                raise LadderStopped(f"{len(runs) - ended} final trainings did not end; start the ladder again to run "
                                    "them (those that ended are kept)")
            return len(runs)

        trained += train_all(todo, "final trainings")
        # The best network study's top configs, each over the same seeds: their ensemble.
        ensembles, extra = [], []
        networks = [i for i, r in enumerate(rungs) if not r.deterministic]
        if networks:
            best = rungs[max(networks, key=lambda i: np.mean([read_training(f.out / METRICS_FILE)["ev"]
                                                              for f in sum(plans[i], [])]))]
            for member in top_configs(args.storage, best.study, best):
                extra.append((member, final_runs([member], args.seeds, args.storage, data.fingerprint)))
                labels[f"{member.study}/{member.slug}"] = member.title
            done += [r for _, plan in extra for r in plan[1]]
            trained += train_all([r for _, plan in extra for r in plan[0] + plan[2]],
                                 f"final trainings: {best.study}'s re-checked configs")
        finals_s = time.time() - started
    except LadderStopped as err:
        print(f"\n{err}")
        return 1
    finally:
        ray_start.close()

    val = ValData(data.spikes_val, data.object_val, data.noise_ceiling_val,
                  reference_scores(data, complete({}), final=True), data.fingerprint)
    analysed = [gathered(r, sum(plan, []), args.storage) for r, plan in zip(rungs, plans)]
    if extra:
        members = [run for r in analysed if r.study == best.study and r.label == best.label for run in r.runs]
        for member, plan in extra:
            path = config_file(args.storage, member)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(member.config, indent=2) + "\n")
            members += gathered(member, sum(plan, []), args.storage).runs
        ensembles.append(Ensemble(f"top {1 + len(extra)} configs x {args.seeds or NETWORK_SEEDS} seeds", best.study,
                                  members))
    written = write_ladder(analysed, val, args.storage / LADDER_DIR, ensembles)
    log_answer(mlflow_runs, written, labels, rungs, args.storage)
    print("\n" + "\n".join(format_table(written.rows, val)))
    print(f"\nladder: {len(rungs)} rows; studies {minutes(studies_s)}, final trainings {minutes(finals_s)} "
          f"({trained} trained, {len(done)} done before); in all {minutes(time.time() - begun)}")
    print(f"page: {written.page}")
    page = runs_url(tracking_uri, mlflow_runs.experiment, "val_ev")
    print(f"browse the runs: mlflow ui --backend-store-uri {tracking_uri}  (then open {page})"
          if tracking_uri.startswith("sqlite:") else f"browse the runs: {page}")
    return 0


def log_answer(mlflow_runs, written, labels: dict, rungs: list[RungConfig], storage: Path) -> None:
    """The ladder's statistics on its MLflow runs (a row's on its rung's run, its seeds' ensemble's there too as
    ``ensemble_*``, the top configs' ensemble's on the parent), its files as the parent's artifacts; the runs end."""
    ids = {str(config_file(storage, r)): f"{r.study}/{r.slug}" for r in rungs}
    for row in written.rows:
        values = {"val_ev": row.ev, "val_ev_sd": row.ev_sd, "val_ev_low": row.interval[0],
                  "val_ev_high": row.interval[1], "val_r_mean": row.r, "val_ev_ceiled": row.ceiled}
        row_id = ids.get(row.config)
        if row.kind != "model":
            values = {f"ensemble_{k}": v for k, v in values.items()}
            if row.gain is not None:
                values.update(ensemble_gain=row.gain.value, ensemble_gain_low=row.gain.low,
                              ensemble_gain_high=row.gain.high)
        run = mlflow_runs.rung(row_id, labels[row_id]) if row_id is not None else mlflow_runs.parent
        mlflow_runs.log_metrics(run, values)
    for path in written.files:
        mlflow_runs.client.log_artifact(mlflow_runs.parent, str(path))
    mlflow_runs.close()


if __name__ == "__main__":
    code = main()
    # Everything is closed by now: the interpreter's own teardown of Ray's and torch's native state would add seconds.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
