"""Run a study: Ray Tune with Optuna search, ASHA early stopping and MLflow tracking.

    python -m trainables.search --space vgg_depth

Everything of a search lives in ``<storage>/<name>/``: Ray's experiment folder,
the Optuna study (``optuna.db``), ``search.json`` (settings, for ``--resume``),
and at the end ``best_config.json`` and ``trials.csv``. Trials log to MLflow
(``sqlite:///<storage>/mlflow.db`` by default), nested under one parent run.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna

from trainables.study.recheck import format_table, recheck_configs, recheck_table
from trainables.study.records import OBJECTIVE, OPTUNA_FILE, RECHECK_DIR, RECHECK_KEY, SEARCH_FILE, load_trials, status_counts
from search_spaces import SEARCH_SPACES, points_to_evaluate, profile_hints, scientific_parameter
from search_spaces.context import BoundSpace, SpaceContext
from trainables.cli import (
    Parser,
    UsageError,
    add_data_arguments,
    add_weights_arguments,
    check_tracking_uri,
    fail,
    profile_message,
    resolve_data_arguments,
    setup_logging,
    weights_policy,
)
from trainables.study.checkpoints import BEST_WEIGHTS_FILE, checkpoint_folders, keep_best_weights
from trainables.core.config import ConfigError, validate_config
from trainables.data.schema import DataError
from trainables.fitting.lookup import ideal_observer_scores
from trainables.study.profiles import Profile
from trainables.study.probe import plan_weights, precompute_features, probe_space
from trainables.study.tracking import close_search_run, start_search_run
from trainables.study.samplers import SAMPLERS, make_sampler
from trainables.study.schedulers import SCHEDULERS, make_scheduler
from trainables.study.schedulers import describe as describe_scheduler
from trainables.study import defaults

log = logging.getLogger("trainables.search")
GIB = 1024**3


def parse_args(argv):
    p = Parser(prog="python -m trainables.search", description=__doc__.split("\n")[0])
    p.add_argument("--space", choices=list(SEARCH_SPACES), help="the study to run")
    add_data_arguments(p)
    add_weights_arguments(p)
    p.add_argument("--num-samples", type=int, help="trials (default: the profile's)")
    p.add_argument("--searcher", default=defaults.SEARCHER, choices=list(SAMPLERS),
                   help=f"qmc: quasi-random, to explore (default {defaults.SEARCHER})")
    p.add_argument("--seed", type=int, default=0, help="seed of the searcher and of every trial")
    p.add_argument("--scheduler", default=defaults.SCHEDULER, choices=list(SCHEDULERS),
                   help="early stopping: asha, hyperband (asynchronous, several brackets) or fifo (none); "
                        f"default {defaults.SCHEDULER}")
    p.add_argument("--grace-period", type=int,
                   help="ASHA/Hyperband: epochs before a trial can be stopped (default: "
                        f"{defaults.GRACE_FRACTION:g} of the longest recipe's epochs)")
    p.add_argument("--reduction-factor", type=float, default=defaults.REDUCTION_FACTOR,
                   help=f"ASHA/Hyperband: keep 1/f of the trials at each rung (default {defaults.REDUCTION_FACTOR:g})")
    p.add_argument("--recheck-top", type=int, metavar="K",
                   help="at the end, train the K best completed configs again with new seeds and export the best mean "
                        f"(default {defaults.RECHECK_TOP}; 0: off; with --resume, also re-checks a finished search)")
    p.add_argument("--recheck-seeds", type=int, metavar="S",
                   help=f"seeds per re-checked config (default {defaults.RECHECK_SEEDS}, at least 2)")
    p.add_argument("--gpus-per-trial", type=float, help="fractional allowed (default: 1 with a GPU, else 0)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: what CPUs, GPUs and memory allow)")
    p.add_argument("--memory-per-trial", type=float,
                   help="GiB of host memory a trial adds beyond the shared images (default: estimated per space)")
    p.add_argument("--checkpoint-interval", type=float, default=300.0,
                   help="seconds of training between a trial's resumable checkpoints (saving never takes more than "
                        "10%% of a trial's time; ended trials' checkpoints are removed)")
    p.add_argument("--storage", type=Path, default=Path("runs"))
    p.add_argument("--name", help="experiment name (default: the space name)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///<storage>/mlflow.db)")
    p.add_argument("--address", help="join an existing Ray cluster (e.g. 127.0.0.1:6379)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search of this name")
    args = p.parse_args(argv)
    if not args.resume and not args.space:
        fail("--space is required (valid: " + ", ".join(SEARCH_SPACES) + ")")
    return args


def check_numbers(args) -> None:
    for flag, value, low in (("num-samples", args.num_samples, 1), ("grace-period", args.grace_period, 1),
                             ("max-concurrent", args.max_concurrent, 1), ("checkpoint-interval", args.checkpoint_interval, 0)):
        if value is not None and value < low:
            raise UsageError(f"--{flag} must be >= {low}, got {value}")
    if args.recheck_top is not None and args.recheck_top < 0:
        raise UsageError(f"--recheck-top must be >= 0, got {args.recheck_top}")
    if args.recheck_seeds is not None and args.recheck_seeds < 2:
        raise UsageError(f"--recheck-seeds must be >= 2 (a standard error needs two), got {args.recheck_seeds}")
    if args.reduction_factor <= 1:
        raise UsageError(f"--reduction-factor must be > 1, got {args.reduction_factor}")
    if args.memory_per_trial is not None and args.memory_per_trial <= 0:
        raise UsageError(f"--memory-per-trial must be > 0, got {args.memory_per_trial}")
    if args.cpus_per_trial <= 0 or (args.gpus_per_trial is not None and not 0 <= args.gpus_per_trial):
        raise UsageError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except OSError:
        return "unknown"


def plan(args) -> dict:
    """All checks and decisions of a new search, before anything is written or started."""
    check_numbers(args)
    profile: Profile = resolve_data_arguments(args, profile_hints(args.space))
    name = args.name or args.space
    folder = (args.storage / name).resolve()
    if (folder / SEARCH_FILE).exists():
        raise UsageError(f"a search named '{name}' exists in {args.storage}; use --resume, or another --name")
    tracking_uri = args.tracking_uri or f"sqlite:///{(args.storage / 'mlflow.db').resolve()}"
    check_tracking_uri(tracking_uri)
    try:
        weights = plan_weights(args.space, SpaceContext(max_epochs=profile.max_epochs, seed=args.seed),
                               weights_policy(args, profile), fallback=profile.name != "full")
        configs = probe_space(args.space, weights.ctx)
    except (ConfigError, ValueError) as err:
        raise UsageError(f"space '{args.space}' produces an invalid config: {err}") from None
    if weights.missing and profile.name == "full":
        raise UsageError(f"--profile full needs ImageNet weights missing for {', '.join(weights.missing)}: "
                         + " | ".join(weights.missing.values()))
    notes = []
    if weights.missing:
        loaded = sorted(set(weights.wanted) - set(weights.missing))
        notes.append(f"ImageNet weights not in the torch cache for {', '.join(weights.missing)}: those backbones run "
                     f"with random weights" + (f"; ImageNet weights used for {', '.join(loaded)}" if loaded else ""))
    ctx = weights.ctx
    max_t = max(c["epochs"] for c in configs)
    import torch

    gpus = args.gpus_per_trial if args.gpus_per_trial is not None else (1.0 if torch.cuda.is_available() else 0.0)
    return {
        "space": args.space, "scientific": scientific_parameter(args.space), "name": name, "folder": str(folder), "storage": str(args.storage.resolve()),
        "searcher": args.searcher, "seed": args.seed, "scheduler": args.scheduler,
        "grace_period": args.grace_period or defaults.grace_period(max_t), "reduction_factor": args.reduction_factor,
        "num_samples": args.num_samples or profile.num_samples,
        "recheck": recheck_settings(args, {}),
        "profile": {"name": profile.name, "resolution": profile.resolution,
                    "images_per_object": profile.images_per_object, "max_epochs": profile.max_epochs},
        "data": {"source": args.data, "data_seed": args.data_seed, "resolution": profile.resolution,
                 "images_per_object": profile.images_per_object},
        "context": {"pretrained": sorted(ctx.pretrained), "max_epochs": ctx.max_epochs, "seed": ctx.seed},
        "max_t": max_t, "notes": notes,
        # ImageNet checkpoints the driver resolved; trials get them through Ray's object store.
        "imagenet": sorted(set(weights.found) & ctx.pretrained),
        "gpus_per_trial": gpus, "cpus_per_trial": args.cpus_per_trial, "max_concurrent": args.max_concurrent,
        "checkpoint_interval": args.checkpoint_interval, "tracking_uri": tracking_uri, "address": args.address,
        "git_commit": git_commit(),
    }


def recheck_settings(args, saved: dict) -> dict:
    """The top-K re-check's K and S: the flags, else what the search saved, else 3 and 3."""
    top = args.recheck_top if args.recheck_top is not None else saved.get("top", defaults.RECHECK_TOP)
    seeds = args.recheck_seeds if args.recheck_seeds is not None else saved.get("seeds", defaults.RECHECK_SEEDS)
    return {"top": top, "seeds": seeds}


def plan_resume(args) -> dict:
    """Settings of the search to resume; UsageError when there is nothing to resume.

    A finished search resumes only to run a re-check asked for with ``--recheck-top``.
    """
    check_numbers(args)
    name = args.name or args.space
    if not name:
        raise UsageError("--resume needs --name or --space to know which search to continue")
    folder = args.storage / name
    if not (folder / SEARCH_FILE).is_file():
        raise UsageError(f"nothing to resume: no search '{name}' in {args.storage}")
    settings = json.loads((folder / SEARCH_FILE).read_text())
    # Searches from before the re-check existed ran none.
    settings["recheck"] = recheck_settings(args, settings.get("recheck", {"top": 0}))
    if settings.get("finished") and not args.recheck_top:
        raise UsageError(f"nothing to resume: search '{name}' finished (--recheck-top K re-checks its K best)")
    check_tracking_uri(settings["tracking_uri"])
    if args.address:
        settings["address"] = args.address
    return settings


def make_trainable(settings: dict, data):
    """The search's trainable: the trial function with the shared data, ImageNet weights and resources."""
    from ray import tune

    # Imported here, after connect_ray: Ray reads RAY_AUTH_MODE when it is first imported.
    from trainables.study.trial import train_trial

    threads = max(1, int(settings["cpus_per_trial"]))
    return tune.with_resources(
        tune.with_parameters(train_trial, data=data, threads=threads, imagenet=ship_imagenet(settings.get("imagenet", [])),
                             checkpoint_interval=settings["checkpoint_interval"],
                             feature_cache=str(Path(settings["storage"]) / "features")),
        trial_resources(settings),
    )


def run_config(settings: dict, name: str, storage_path: str, group_by: str | None = None, reporter=None):
    """Ray's run config of a search phase: MLflow runs under the search's parent run, checkpoint clean-up."""
    from ray import tune

    from trainables.study.trial import CheckpointJanitor, MLflowTrials

    return tune.RunConfig(
        name=name, storage_path=storage_path,
        callbacks=[MLflowTrials(settings["tracking_uri"], settings["experiment_id"], settings["parent_run_id"]),
                   CheckpointJanitor(OBJECTIVE, group_by)],
        checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        progress_reporter=reporter, verbose=1,
    )


def progress_reporter(settings: dict):
    from ray import tune

    return tune.CLIReporter(
        metric_columns={"training_iteration": "epoch", "inner_ev": "inner EV", "inner_r": "inner r",
                        OBJECTIVE: "best EV"},
        parameter_columns=[scientific_parameter(settings["space"]), "seed"], max_report_frequency=20,
        sort_by_metric=True,
    )


def build_tuner(settings: dict, data, restore: bool):
    """The Tuner of a search (new or restored): same trainable, searcher, scheduler and callbacks."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from trainables.study.trial import StudySearcher

    trainable = make_trainable(settings, data)
    folder = Path(settings["folder"])
    if restore:
        return tune.Tuner.restore(str(folder), trainable=trainable, resume_unfinished=True, resume_errored=False,
                                  restart_errored=False)
    searcher = StudySearcher(
        space=BoundSpace(settings["space"], space_context(settings)), metric=OBJECTIVE, mode="max",
        points_to_evaluate=points_to_evaluate(settings["space"]) or None,
        sampler=make_sampler(settings["searcher"], settings["seed"]),
        study_name=settings["name"], storage=optuna.storages.RDBStorage(f"sqlite:///{folder / OPTUNA_FILE}"),
    )
    searcher = ConcurrencyLimiter(searcher, max_concurrent=settings["concurrency"])
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=OBJECTIVE, mode="max", search_alg=searcher, scheduler=make_scheduler(settings),
                                    num_samples=settings["num_samples"], trial_dirname_creator=trial_dirname),
        run_config=run_config(settings, settings["name"], settings["storage"], reporter=progress_reporter(settings)),
    )


def build_recheck_tuner(settings: dict, data, configs: list[dict], origins: dict[str, int]):
    """The Tuner of the top-K re-check: fixed configs, no early stopping, trials in ``<search>/recheck/``."""
    from ray import tune

    from trainables.study.schedulers import make_scheduler as scheduler_named
    from trainables.study.trial import RecheckSearcher

    folder = Path(settings["folder"])
    searcher = RecheckSearcher(configs, origins, settings["name"], f"sqlite:///{folder / OPTUNA_FILE}", OBJECTIVE)
    return tune.Tuner(
        make_trainable(settings, data),
        tune_config=tune.TuneConfig(metric=OBJECTIVE, mode="max", search_alg=searcher,
                                    scheduler=scheduler_named({"scheduler": "fifo"}), num_samples=len(configs),
                                    trial_dirname_creator=trial_dirname),
        run_config=run_config(settings, RECHECK_DIR, str(folder), group_by=RECHECK_KEY,
                              reporter=progress_reporter(settings)),
    )


def search_done(settings: dict, trials) -> bool:
    """Whether the searcher's phase ended: every trial it was to run has ended."""
    counts = status_counts(trials)
    return counts["running"] == 0 and sum(counts.values()) >= settings["num_samples"]


def run_recheck(settings: dict, data) -> None:
    """Train the K best completed configs again with S new seeds (:mod:`trainables.study.recheck`); skip what is done."""
    top, seeds = settings["recheck"]["top"], settings["recheck"]["seeds"]
    trials = load_trials(Path(settings["folder"]))
    if not top or not search_done(settings, trials):
        return
    configs = recheck_configs(trials, top, seeds, settings["seed"])
    if not configs:
        return
    origins = {t.trial_id: t.config["_optuna_trial"] for t in trials if "_optuna_trial" in t.config}
    n_configs = len({c[RECHECK_KEY] for c in configs})
    log.info("re-check: %d config%s x %d new seeds (%d trials to their end, no early stopping)", n_configs,
             "s" * (n_configs > 1), seeds, len(configs))
    build_recheck_tuner(settings, data, configs, origins).fit()


def ship_imagenet(backbones: list[str]) -> dict:
    """The driver's ImageNet state dicts, one object-store entry per backbone: workers need no torch cache.

    Each trial fetches only its own backbone's entry.
    """
    import ray

    from trainables.models.weights import load_imagenet_state

    return {name: ray.put(load_imagenet_state(name)) for name in backbones}


def space_context(settings: dict) -> SpaceContext:
    """The context a search's space is sampled in, as saved in its settings."""
    c = settings["context"]
    return SpaceContext(pretrained=frozenset(c["pretrained"]), max_epochs=c["max_epochs"], seed=c["seed"])


def trial_dirname(trial) -> str:
    """Short trial folder names (Ray's default spells out the whole config)."""
    return f"trial_{trial.trial_id}"


def trial_resources(settings: dict):
    """Each trial's request to Ray: the search's CPUs and GPUs per trial, and the memory its own config needs."""
    from trainables.study.resources import TrialResources

    fixed = settings["memory"]["fixed_gib"]
    return TrialResources(settings["cpus_per_trial"], settings["gpus_per_trial"], settings["memory"],
                          int(fixed * GIB) if fixed else None)


def memory_range(settings: dict) -> tuple[int, int]:
    """Smallest and largest memory request among the configs the space can sample (bytes)."""
    resources = trial_resources(settings)
    needs = [resources.memory(c) for c in probe_space(settings["space"], space_context(settings))]
    return min(needs), max(needs)


def concurrency(settings: dict) -> int:
    """Trials at once: the flag, else as many as the cluster's CPUs, GPUs and host memory allow.

    Memory is Ray's ``memory`` resource (what a node offers to tasks, the object store
    holding the shared images excluded); each trial also asks Ray for its share, so
    that no node runs more trials than its memory holds.
    """
    import ray

    largest = max((n["Resources"].get("memory", 0) for n in ray.nodes() if n.get("Alive")), default=0)
    least, most = settings["memory"]["range"]
    if largest and most > largest:
        raise UsageError(f"a trial of this search may need about {most / GIB:.1f} GiB of host memory, the largest Ray "
                         f"node offers {largest / GIB:.1f} GiB (set --memory-per-trial to override the estimate)")
    if settings.get("max_concurrent"):
        return settings["max_concurrent"]
    resources = ray.cluster_resources()
    fits = [int(resources.get("CPU", 1) // settings["cpus_per_trial"])]
    if settings["gpus_per_trial"] > 0:
        fits.append(int(resources.get("GPU", 0) // settings["gpus_per_trial"]))
    if resources.get("memory"):  # each trial reserves its own need; this bounds how many Optuna keeps pending
        fits.append(int(resources["memory"] // least))
    return max(1, min(fits))


def finish(settings: dict) -> dict:
    """Export the best config and trials table, log them to the parent run, and return the summary."""
    from analysis.export import NothingToExport, export

    trials = load_trials(Path(settings["folder"]))
    counts = status_counts(trials)
    summary = {"counts": counts, "best": None, "recheck": recheck_table(trials),
               "first": first_point(settings, trials)}
    try:
        best_path, best = export(Path(settings["storage"]), settings["name"])
        summary.update(best=best, best_path=str(best_path))
    except NothingToExport as err:
        log.warning("%s", err)
    weights = keep_best_weights(trials, weights_trial(trials, summary["best"]), Path(settings["folder"]) / BEST_WEIGHTS_FILE)
    if weights:
        summary["best_weights"] = str(weights)
    close_search_run(settings, counts, summary["best"], summary.get("best_path"), search_done(settings, trials))
    return summary


def weights_trial(trials, best: dict | None) -> str | None:
    """The trial whose weights are kept: of the exported config's trials (its search run and its re-check seeds),
    the best-scoring one whose checkpoint the janitor kept."""
    if best is None:
        return None
    chosen = best["provenance"]["trial_id"]
    own = [t for t in trials if t.trial_id == chosen or t.config.get(RECHECK_KEY) == chosen]
    own = [t for t in own if t.status == "completed" and t.best(OBJECTIVE) is not None and t.folder is not None
           and any((f / BEST_WEIGHTS_FILE).is_file() for f in checkpoint_folders(t.folder))]
    return max(own, key=lambda t: t.best(OBJECTIVE)).trial_id if own else None


def first_point(settings: dict, trials) -> dict | None:
    """What became of the space's first point to evaluate (the report's recipe): status, epochs, score, rank."""
    if not points_to_evaluate(settings["space"]):
        return None
    first = next((t for t in trials if t.config.get("_optuna_trial") == 0), None)
    if first is None:
        return None
    ranked = sorted((t.best(OBJECTIVE) for t in trials if t.status == "completed" and RECHECK_KEY not in t.config
                     and t.best(OBJECTIVE) is not None), reverse=True)
    value = first.best(OBJECTIVE)
    return {"trial_id": first.trial_id, "status": first.status, "epochs": first.epochs, "value": value,
            "rank": ranked.index(value) + 1 if first.status == "completed" and value in ranked else None,
            "of": len(ranked)}


def print_summary(settings: dict, summary: dict, seconds: float) -> None:
    c = summary["counts"]
    print(f"\nsearch '{settings['name']}' ({settings['space']}) done in {seconds / 60:.1f} min: "
          f"{c['completed']} completed, {c['pruned']} pruned, {c['failed']} failed"
          + (f", {c['running']} unfinished" if c["running"] else ""))
    first = summary.get("first")
    if first:
        fate = (f"completed, rank {first['rank']} of {first['of']} completed" if first["status"] == "completed"
                else f"{first['status']} after {first['epochs']} epoch{'s' * (first['epochs'] != 1)}")
        score = "" if first["value"] is None else f", best inner EV {first['value']:.4f}"
        print(f"the space's first point (the report's recipe), trial {first['trial_id']}: {fate}{score}")
    rows = summary["recheck"]
    if rows:
        print(f"re-check of the {len(rows)} best config{'s' * (len(rows) > 1)} with new seeds, each to its end "
              "(inner-validation EV; the search's own run, selected for being high, is left out of the mean):")
        print("\n".join("  " + line for line in format_table(rows)))
    best = summary["best"]
    if best:
        p = best["provenance"]
        # The study's own choices; the exported file holds the complete config.
        shown = {"backbone": best["backbone"], **p.get("sampled", {})}
        epochs = p["epochs_reached"]
        how = (f"best re-check mean {rows[0].mean:.4f} +- {rows[0].se:.4f} over {rows[0].n} seeds; " if rows else "")
        print(f"exported trial {p['trial_id']}: {how}inner-validation EV {p['value']:.4f} in the search, after "
              f"{epochs} epoch{'s' * (epochs > 1)}")
        print("sampled: " + json.dumps(shown))
        print(f"exported: {summary['best_path']}  (train it: python -m trainables.train --config {summary['best_path']})")
        if summary.get("best_weights"):
            print(f"its weights (best epoch): {summary['best_weights']}")
    if settings.get("references"):
        print("for scale, on the same inner split: " + ", ".join(
            f"{name} EV {ev:.4f}" for name, ev in settings["references"].items()) + " (labels only, no pixels)")
    print(f"trials table: {Path(settings['folder']) / 'trials.csv'}")
    uri = settings["tracking_uri"]
    # MLflow 3.17's UI picks its GenAI or model-training layout from this URL parameter (or the browser's last
    # choice); the experiment's kind tag alone does not switch it.
    page = f"#/experiments/{settings['experiment_id']}/runs?workflowType=machine_learning"
    if uri.startswith("sqlite:"):
        print(f"browse the trials: mlflow ui --backend-store-uri {uri}  (then open http://127.0.0.1:5000/{page})")
    else:
        print(f"browse the trials: {uri.rstrip('/')}/{page}")


def ray_token_available() -> bool:
    """Whether a Ray authentication token can be found (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or bool(path and Path(path).is_file()) or (
        Path.home() / ".ray" / "auth_token").is_file()


def connect_ray(address: str | None) -> None:
    """Start a local Ray instance, or join the cluster at ``address``; one-line error and exit 2 if refused."""
    # Ray 2.60 clusters started with `ray start --head` require a token, but a client only sends
    # one in token mode; a token-mode client also works with clusters that have auth disabled.
    # Ray reads the mode when first imported, so this comes before `import ray`.
    if address and "RAY_AUTH_MODE" not in os.environ and ray_token_available():
        os.environ["RAY_AUTH_MODE"] = "token"
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic trial table, with our columns
    # Checkpointing every epoch is intended; Tune's warning about frequent snapshots is noise here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    try:
        # "local": a private instance, even when a `ray start` cluster runs on this machine.
        ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        hint = " (token authentication? see README, 'Running on a cluster')" if "auth" in str(err).lower() else ""
        fail(f"cannot connect to the Ray cluster at {address}: {str(err).splitlines()[0]}{hint}")


def load_search_data(settings: dict):
    """The data set of a search, loaded once by the driver (trials get it through the object store)."""
    from trainables.data.datasets import load_dataset
    from trainables.data.synthetic import SyntheticSpec

    d = settings["data"]
    return load_dataset(d["source"], SyntheticSpec(d["data_seed"], d["resolution"], d["images_per_object"]))


def announce(settings: dict, args) -> None:
    if args.resume:
        log.info("resuming search '%s' from %s", settings["name"], settings["folder"])
        return
    log.info("%s", profile_message(args, Profile(**{**settings["profile"], "num_samples": settings["num_samples"]})))
    log.info("study %s: %d trials, searcher %s", settings["space"], settings["num_samples"], settings["searcher"])
    log.info("%s", describe_scheduler(settings))
    rc = settings["recheck"]
    log.info("%s", f"then a re-check: the {rc['top']} best completed configs trained again with {rc['seeds']} new seeds "
             "each; the best mean is exported" if rc["top"] else "no re-check (--recheck-top 0): the best single "
             "trial is exported")
    for note in settings["notes"]:
        log.info("%s", note)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    try:
        settings = plan_resume(args) if args.resume else plan(args)
        # Loaded (and validated) before Ray starts or anything is written: a bad file costs nothing.
        data = load_search_data(settings)
        if args.resume and data.fingerprint != settings.get("data_fingerprint", data.fingerprint):
            raise UsageError(f"the data of search '{settings['name']}' changed since it started (fingerprint "
                             f"{data.fingerprint}, was {settings['data_fingerprint']}): start a new search")
    except (UsageError, DataError) as err:
        fail(str(err))
    announce(settings, args)
    log.info("data %s", data.describe())
    connect_ray(settings.get("address"))
    folder = Path(settings["folder"])
    start = time.perf_counter()
    if not args.resume:
        settings["memory"] = {"fixed_gib": args.memory_per_trial, "n_sites": data.n_sites,
                              "n_images": len(data.stimulus_train) + len(data.stimulus_val) + len(data.stimulus_test),
                              "image_shape": list(data.stimulus_train.shape[1:])}
        settings["memory"]["range"] = memory_range(settings)
        # Scores any trial must beat to be more than object recognition (trials score on this same inner split).
        settings["references"] = ideal_observer_scores(data, validate_config({}), final=False)
        try:
            settings["concurrency"] = concurrency(settings)
        except UsageError as err:
            fail(str(err))
        folder.mkdir(parents=True, exist_ok=True)
        settings.update(start_search_run(settings, data.fingerprint))
        (folder / SEARCH_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    precompute_features(settings["space"], space_context(settings), data, Path(settings["storage"]))
    # Optuna's default of one pending trial would start fractional-GPU trials one after another.
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(settings["concurrency"])
    least, most = settings["memory"]["range"]
    log.info("running up to %d trials at once (%g CPU, %g GPU and %s GiB of host memory each)", settings["concurrency"],
             settings["cpus_per_trial"], settings["gpus_per_trial"],
             f"{least / GIB:.1f}" if least == most else f"{least / GIB:.1f} to {most / GIB:.1f}")
    if not (args.resume and search_done(settings, load_trials(folder))):
        build_tuner(settings, data, restore=args.resume).fit()
    run_recheck(settings, data)
    summary = finish(settings)
    trials = load_trials(folder)
    rc = settings["recheck"]
    settings["finished"] = search_done(settings, trials) and not recheck_configs(trials, rc["top"], rc["seeds"], settings["seed"])
    (folder / SEARCH_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    print_summary(settings, summary, time.perf_counter() - start)
    import ray

    ray.shutdown()
    if not settings["finished"]:
        print(f"search interrupted; continue it with: python -m trainables.search --resume --name {settings['name']} "
              f"--storage {settings['storage']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
