"""Replay search strategies on a recorded table of learning curves: which searcher and scheduler find the best?

    python benchmarks/search_replay.py record --storage runs --name NAME --out benchmarks/replay/TABLE
    python benchmarks/search_replay.py run [--table benchmarks/replay/vgg_depth_smoke] [--seeds 20]

A tabular benchmark in the manner of the HPO literature (HPOBench's tabular
benchmarks, LCBench): a search is recorded once with ``--scheduler fifo`` (every
config trained to its own end, each epoch's inner-validation EV kept) and its top-K
re-check (several seeds for the best few configs, so that their true value is known
within noise). ``record`` turns that study into ``TABLE.csv`` (config, seed, epoch,
inner EV, epoch seconds) and ``TABLE.json`` (the space, its Optuna distributions,
each config's sampled values, where the table came from).

``run`` replays strategies through the real code of a search: Ray Tune, the
project's Optuna searcher (:class:`trainables.study.run.trial.StudySearcher`) sampling
the real space function, and the project's schedulers (:mod:`trainables.study.tune.schedulers`).
Only the trainable differs: it maps the sampled config to the nearest recorded
config (sampled values scaled to [0, 1] by their distributions, log where
sampled on a log scale; a different category counts 1) and reports that config's
recorded curve, one epoch at a time, sleeping a scaled-down epoch time so that
asynchronous schedulers see trials progress at their recorded relative speeds.
Configs recorded with several seeds report one of them, chosen per trial.

Each strategy is replayed with 20 searcher seeds under one budget of epochs. At
every point of the budget the exported config is the best completed trial by its
reported (single-seed) score, as the search exports without its re-check; its
regret is the table's best true value (mean over the recorded seeds) minus the
exported config's true value. The run prints, per strategy, the median and 80th
percentile regret at fractions of the budget, the epochs the median needs to come
within 0.01 EV of the best (and the ratio to random search without early stopping),
and how often the first sample of the table's best config was stopped before its
own end; it draws the any-time curves (``--plot``) and writes the table into
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results_md import write_section  # noqa: E402

log = logging.getLogger("search_replay")
DEFAULT_TABLE = ROOT / "benchmarks" / "replay" / "vgg_depth_smoke"
TARGET_REGRET = 0.01
# Strategies compared: searcher and scheduler settings as ``trainables.search`` takes them.
STRATEGIES: dict[str, dict] = {
    "random + fifo": {"sampler": "random", "scheduler": "fifo"},
    "tpe + fifo": {"sampler": "tpe", "scheduler": "fifo"},
    **{f"tpe + asha g{g} rf{rf}": {"sampler": "tpe", "scheduler": "asha", "grace_period": g, "reduction_factor": rf}
       for g in (1, 2, 4) for rf in (2, 3)},
    **{f"qmc + asha g2 rf{rf}": {"sampler": "qmc", "scheduler": "asha", "grace_period": 2, "reduction_factor": rf}
       for rf in (2, 3)},
    "tpe + hyperband g1 rf3": {"sampler": "tpe", "scheduler": "hyperband", "grace_period": 1, "reduction_factor": 3},
}
BASELINE = "random + fifo"


# ----------------------------------------------------------------------------------------------------------- table
@dataclass
class Table:
    """Recorded learning curves.

    Attributes
    ----------
    meta : dict
        ``TABLE.json``: space, context, max_t, distributions (Optuna JSON), params (config -> sampled values).
    curves : dict
        config -> list over seeds of arrays of shape (epochs,): inner-validation EV per epoch.
    seconds : dict
        config -> list over seeds of arrays of shape (epochs,): seconds per epoch.
    """

    meta: dict
    curves: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    @classmethod
    def load(cls, stem: Path) -> Table:
        stem = Path(stem)
        if not stem.with_suffix(".json").is_file():
            raise FileNotFoundError(f"no replay table {stem}.json (record one: search_replay.py record ...)")
        table = cls(json.loads(stem.with_suffix(".json").read_text()))
        rows: dict = {}
        with stem.with_suffix(".csv").open() as f:
            for r in csv.DictReader(f):
                rows.setdefault((r["config"], int(r["seed"])), []).append((int(r["epoch"]), float(r["inner_ev"]),
                                                                          float(r["epoch_seconds"])))
        for (config, _), epochs in sorted(rows.items()):
            epochs.sort()
            table.curves.setdefault(config, []).append(np.array([e[1] for e in epochs]))
            table.seconds.setdefault(config, []).append(np.array([e[2] for e in epochs]))
        return table

    @property
    def configs(self) -> list[str]:
        return sorted(self.curves)

    def true_value(self, config: str) -> float:
        """The config's objective (best inner-validation EV over its epochs), averaged over its recorded seeds."""
        return float(np.mean([c.max() for c in self.curves[config]]))

    def best(self) -> tuple[str, float]:
        values = {c: self.true_value(c) for c in self.configs}
        top = max(values, key=values.get)
        return top, values[top]

    def _encode(self, params: dict) -> dict:
        """Sampled values scaled to [0, 1] by their Optuna distributions (log scale where sampled so)."""
        import optuna

        out = {}
        for name, value in params.items():
            dist = optuna.distributions.json_to_distribution(self.meta["distributions"][name])
            if isinstance(dist, optuna.distributions.CategoricalDistribution):
                out[name] = ("cat", value)
            else:
                low, high, v = float(dist.low), float(dist.high), float(value)
                if dist.log:
                    low, high, v = math.log(low), math.log(high), math.log(v)
                out[name] = ("num", (v - low) / (high - low) if high > low else 0.0)
        return out

    def nearest(self, params: dict) -> str:
        """The recorded config nearest to a sampled one (Euclidean over scaled values; a differing category or a
        value only one of them has counts 1)."""
        if not hasattr(self, "_encoded"):
            self._encoded = {c: self._encode(p) for c, p in self.meta["params"].items() if c in self.curves}
        query = self._encode({k: v for k, v in params.items() if k in self.meta["distributions"]})

        def distance(code: dict) -> float:
            total = 0.0
            for name in set(code) | set(query):
                if name not in code or name not in query:
                    total += 1.0
                elif code[name][0] == "cat":
                    total += float(code[name][1] != query[name][1])
                else:
                    total += (code[name][1] - query[name][1]) ** 2
            return total

        return min(self._encoded, key=lambda c: distance(self._encoded[c]))


def record(storage: Path, name: str, out: Path) -> Path:
    """Write ``out.csv`` and ``out.json`` from a finished fifo search (and its re-check seeds)."""
    import optuna

    from trainables.core.layout import OPTUNA_KEY, RECHECK_KEY
    from trainables.study.plan.search_plan import read_plan
    from trainables.study.records.trials import load_optuna_study, load_trials, study_folder

    folder = study_folder(storage, name)
    plan = read_plan(folder)
    if plan.scheduler.name != "fifo":
        raise ValueError(f"search '{name}' ran with --scheduler {plan.scheduler.name}: a table needs every config "
                         "trained to its end (--scheduler fifo)")
    study = load_optuna_study(folder, plan.name)
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    trials = load_trials(folder)
    numbers = {t.trial_id: t.config[OPTUNA_KEY] for t in trials if OPTUNA_KEY in t.config}
    rows, params, distributions = [], {}, {}
    for t in trials:
        if t.status != "completed":
            continue
        origin = t.config.get(RECHECK_KEY, t.trial_id)
        ot = by_number[numbers[origin]]
        params[origin] = ot.params
        distributions.update({k: optuna.distributions.distribution_to_json(d) for k, d in ot.distributions.items()})
        for r in t.results:
            rows.append({"config": origin, "seed": t.config["seed"], "epoch": r["training_iteration"],
                         "inner_ev": f"{r['inner_ev']:.5f}", "epoch_seconds": f"{r['epoch_seconds']:.2f}"})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["config", "seed", "epoch", "inner_ev", "epoch_seconds"])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (r["config"], r["seed"], r["epoch"])))
    meta = {"space": plan.space, "context": {"pretrained": list(plan.pretrained), "max_epochs": plan.max_epochs,
                                             "seed": plan.seed},
            "max_t": plan.scheduler.max_t, "profile": {"name": plan.profile}, "data": asdict(plan.data),
            "data_fingerprint": plan.data_fingerprint, "git_commit": plan.git_commit,
            "recorded_from": f"{plan.name} ({plan.sampler} sampler, fifo, seed {plan.seed})",
            "distributions": distributions, "params": params}
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    return out


# ---------------------------------------------------------------------------------------------------------- replay
def replay_trial(config: dict, table: Table, replay_seed: int, time_scale: float) -> None:
    """Ray Tune trainable: report the recorded curve of the config nearest to the sampled one, epoch by epoch."""
    from ray import tune

    # The sampled values (as trainables.core.layout.sampled_params; not imported: workers would load torch).
    cid = table.nearest({k: config[k] for k in config.get("_sampled", ()) if k in config})
    seeds = table.curves[cid]
    pick = (replay_seed * 7919 + config.get("_optuna_trial", 0)) % len(seeds)  # which recorded seed this trial gets
    curve, seconds = seeds[pick], table.seconds[cid][pick]
    best = -math.inf
    for epoch, (ev, sec) in enumerate(zip(curve, seconds), 1):
        time.sleep(sec * time_scale)
        best = max(best, float(ev))
        tune.report({"inner_ev": float(ev), "best_inner_ev": best, "config_index": table.configs.index(cid),
                     "fit_done": int(epoch == len(curve))})


def run_strategy(table: Table, strategy: dict, seed: int, budget: int, concurrency: int, time_scale: float) -> dict:
    """One replay: the strategy's search until ``budget`` epochs are spent.

    Returns
    -------
    dict
        ``events``: (epochs spent, config index, reported score) per completed trial, in order;
        ``stopped``: config indices of trials stopped before their own end, in order of their start;
        ``completed``: config indices of completed trials; ``epochs``: epochs spent.
    """
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from search_spaces import points_to_evaluate
    from search_spaces.context import BoundSpace, SpaceContext
    from trainables.study.plan.search_plan import SchedulerPlan
    from trainables.study.result import OBJECTIVE
    from trainables.study.tune.samplers import make_sampler
    from trainables.study.tune.schedulers import make_trial_scheduler
    from trainables.study.tune.searchers import StudySearcher

    if __name__ != "__main__":  # imported (tests): workers cannot import benchmarks/, so ship this module by value
        from ray import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ctx = table.meta["context"]
    space = BoundSpace(table.meta["space"], SpaceContext(pretrained=frozenset(ctx["pretrained"]),
                                                         max_epochs=ctx["max_epochs"], seed=0))
    searcher = ConcurrencyLimiter(StudySearcher(space=space, metric="best_inner_ev", mode="max",
                                                points_to_evaluate=points_to_evaluate(table.meta["space"]) or None,
                                                sampler=make_sampler(strategy["sampler"], seed)), concurrency)
    scheduler = SchedulerPlan(strategy["scheduler"], strategy.get("grace_period", 2),
                              strategy.get("reduction_factor", 2.0), table.meta["max_t"])
    trace = Trace(budget)
    with tempfile.TemporaryDirectory(prefix="search_replay_") as folder:  # Ray's experiment files: nothing to keep
        tune.Tuner(
            tune.with_resources(tune.with_parameters(replay_trial, table=table, replay_seed=seed, time_scale=time_scale),
                                {"cpu": 1}),
            tune_config=tune.TuneConfig(metric=OBJECTIVE, mode="max", search_alg=searcher,
                                        scheduler=make_trial_scheduler(scheduler), num_samples=-1, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=folder, name="replay", stop=trace, callbacks=[trace], verbose=0,
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
        ).fit()
    return {"events": trace.events, "stopped": trace.stopped, "completed": trace.completed, "epochs": trace.epochs,
            "first_seen": trace.first_seen}


def _trace_base():
    from ray import tune

    class _Base(tune.Callback, tune.Stopper):
        pass

    return _Base


class Trace(_trace_base()):
    """Counts epochs (stops everything at the budget) and records, in order, each trial's end."""

    def __init__(self, budget: int):
        self.budget, self.epochs = budget, 0
        self.events, self.stopped, self.completed, self.first_seen = [], [], [], {}
        self._last: dict = {}

    def __call__(self, trial_id, result) -> bool:  # Stopper: per result
        self.epochs += 1
        self._last[trial_id] = result
        return False

    def stop_all(self) -> bool:
        return self.epochs >= self.budget

    def on_trial_complete(self, iteration, trials, trial, **info):
        result = trial.last_result or self._last.get(trial.trial_id) or {}
        if "config_index" not in result:
            return
        index = int(result["config_index"])
        done = bool(result.get("fit_done"))
        if not done and self.stop_all():
            return  # cut by the end of the budget, not by the scheduler
        self.first_seen.setdefault(index, done)  # was the first sample of this config allowed to finish?
        if done:
            self.completed.append(index)
            self.events.append((self.epochs, index, float(result["best_inner_ev"])))
        else:
            self.stopped.append(index)


def regret_curve(table: Table, events: list, grid: np.ndarray) -> np.ndarray:
    """Regret of the exported config (best reported score so far) at each number of epochs in ``grid``.

    Before the first completed trial the regret is the table's worst: nothing to export yet.
    """
    values = np.array([table.true_value(c) for c in table.configs])
    best, worst = values.max(), values.max() - values.min()
    out = np.full(len(grid), worst)
    incumbent, score = None, -math.inf
    steps = []
    for epochs, index, reported in events:
        if reported > score:
            incumbent, score = index, reported
        steps.append((epochs, best - values[incumbent]))
    for i, e in enumerate(grid):
        reached = [r for at, r in steps if at <= e]
        if reached:
            out[i] = reached[-1]
    return out


@dataclass
class StrategyResult:
    name: str
    curves: np.ndarray  # shape (seeds, grid): regret at each budget point
    first_stopped: list  # per replay that sampled the best config: whether its first sample was stopped early
    seconds: float

    def quantile(self, q: float) -> np.ndarray:
        return np.quantile(self.curves, q, axis=0)

    def epochs_to(self, grid: np.ndarray, target: float, q: float = 0.5) -> float | None:
        """Fewest epochs at which the ``q`` quantile of the regret is at or below ``target``; None if never."""
        below = np.nonzero(self.quantile(q) <= target + 1e-12)[0]
        return float(grid[below[0]]) if len(below) else None


def replay(table: Table, strategies: dict, seeds: int, budget: int, concurrency: int, time_scale: float,
           progress=None) -> tuple[np.ndarray, list[StrategyResult]]:
    """Replay each strategy with searcher seeds 0..seeds-1; returns the epoch grid and the results."""
    import ray

    grid = np.unique(np.linspace(0, budget, 101).astype(int))
    best_index = table.configs.index(table.best()[0])
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=concurrency, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    results = []
    for name, strategy in strategies.items():
        start, curves, first_stopped = time.perf_counter(), [], []
        for seed in range(seeds):
            run = run_strategy(table, strategy, seed, budget, concurrency, time_scale)
            curves.append(regret_curve(table, run["events"], grid))
            if best_index in run["first_seen"]:
                first_stopped.append(not run["first_seen"][best_index])
            if progress:
                progress(name, seed)
        results.append(StrategyResult(name, np.array(curves), first_stopped, time.perf_counter() - start))
    return grid, results


def save_results(path: Path, grid: np.ndarray, results: list[StrategyResult], meta: dict) -> Path:
    """Keep a replay's curves (``.npz``) so that runs split over processes are reported together."""
    np.savez_compressed(path, grid=grid, meta=json.dumps(meta),
                        names=np.array([r.name for r in results]), seconds=np.array([r.seconds for r in results]),
                        **{f"curves_{i}": r.curves for i, r in enumerate(results)},
                        **{f"stopped_{i}": np.array(r.first_stopped, dtype=bool) for i, r in enumerate(results)})
    return path


def load_results(paths: list[Path]) -> tuple[np.ndarray, list[StrategyResult], dict]:
    """Merge saved replays (same table and budget), in the order of :data:`STRATEGIES`; a strategy replayed in
    several files is taken from the last."""
    grid, results, meta = None, [], {}
    for path in paths:
        z = np.load(path)
        if grid is not None and not np.array_equal(grid, z["grid"]):
            raise ValueError(f"{path} was replayed with another budget")
        grid, meta = z["grid"], json.loads(str(z["meta"]))
        results += [StrategyResult(str(n), z[f"curves_{i}"], list(z[f"stopped_{i}"]), float(z["seconds"][i]))
                    for i, n in enumerate(z["names"])]
    results = list({r.name: r for r in results}.values())
    order = list(STRATEGIES)
    results.sort(key=lambda r: order.index(r.name) if r.name in order else len(order))
    return grid, results, meta


def summary_rows(grid: np.ndarray, results: list[StrategyResult], budget: int) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the replay table (markdown-ready strings)."""
    fractions = (1 / 8, 1 / 4, 1 / 3, 1 / 2, 1)
    base = next((r for r in results if r.name == BASELINE), None)
    base_epochs = base.epochs_to(grid, TARGET_REGRET) if base else None
    header = ["strategy", *[f"regret at {f:.2g} of the budget (median / 80th pct)" for f in fractions],
              f"epochs to median regret <= {TARGET_REGRET}", f"vs {BASELINE}",
              "best config's first sample stopped early", "replay seconds"]
    rows = []
    for r in results:
        cells = [r.name]
        for f in fractions:
            i = int(np.searchsorted(grid, f * budget))
            i = min(i, len(grid) - 1)
            cells.append(f"{r.quantile(0.5)[i]:.4f} / {r.quantile(0.8)[i]:.4f}")
        e = r.epochs_to(grid, TARGET_REGRET)
        cells.append("not reached" if e is None else f"{e:.0f}")
        cells.append("" if e is None or not base_epochs else f"{e / base_epochs:.2f}")
        cells.append(f"{sum(r.first_stopped)}/{len(r.first_stopped)}" if r.first_stopped else "never sampled")
        cells.append(f"{r.seconds:.0f}")
        rows.append(cells)
    return header, rows


def plot(grid: np.ndarray, results: list[StrategyResult], path: Path, title: str) -> Path:
    """Any-time curves: median regret (line) and 80th percentile (dashed) against epochs spent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, r in enumerate(results):
        color = plt.cm.tab20(i % 20)
        ax.plot(grid, r.quantile(0.5), color=color, label=r.name, lw=2 if r.name == BASELINE else 1.4)
        ax.plot(grid, r.quantile(0.8), color=color, ls="--", lw=0.8)
    ax.axhline(TARGET_REGRET, color="grey", lw=0.8, ls=":")
    ax.set_yscale("symlog", linthresh=0.002, linscale=0.5)
    ax.set_ylim(0, max(float(r.curves.max()) for r in results) * 1.1)  # regret is never negative
    ax.set_xlabel("epochs spent by the search")
    ax.set_ylabel("regret of the exported config (EV)")
    ax.set_title(title + "\nsolid: median over searcher seeds; dashed: 80th percentile; dotted: 0.01")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


# ------------------------------------------------------------------------------------------------------------- CLI
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/search_replay.py", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="turn a finished fifo search into a replay table")
    rec.add_argument("--storage", type=Path, default=Path("runs"))
    rec.add_argument("--name", required=True)
    rec.add_argument("--out", type=Path, required=True, help="table path without suffix (.csv and .json written)")
    run = sub.add_parser("run", help="replay the strategies on a table")
    run.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    run.add_argument("--strategies", nargs="+", choices=list(STRATEGIES), metavar="NAME",
                     help="default: all of " + "; ".join(STRATEGIES))
    run.add_argument("--seeds", type=int, default=20, help="searcher seeds per strategy")
    run.add_argument("--budget", type=int, help="epochs per replay (default: what random + fifo spends on as many "
                                                "trials as the table has configs)")
    run.add_argument("--concurrency", type=int, default=4, help="trials at once, as on a GPU with several trials")
    run.add_argument("--time-scale", type=float, default=1 / 1000, help="replayed seconds per recorded second")
    run.add_argument("--save", type=Path, help="also keep the curves in this .npz (for 'report')")
    for sub_parser in (run, sub.add_parser("report", help="report saved replays together (e.g. split over processes)")):
        sub_parser.add_argument("--plot", type=Path, help="any-time figure (default: next to the table, -anytime.png)")
        sub_parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/RESULTS.md")
    sub.choices["report"].add_argument("--table", type=Path, default=DEFAULT_TABLE)
    sub.choices["report"].add_argument("curves", type=Path, nargs="+", help=".npz files written by run --save")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("ray", "ray.tune", "optuna"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no per-trial json/csv/tensorboard files
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "100000")  # no experiment snapshots: nothing to resume
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        if args.command == "record":
            return record_command(args)
        if args.command == "run" and (args.seeds < 1 or args.concurrency < 1 or (args.budget or 1) < 1):
            raise ValueError("--seeds, --concurrency and --budget must be >= 1")
        table = Table.load(args.table)
        if args.command == "report":
            grid, results, meta = load_results(args.curves)
        else:
            grid, results, meta = run_command(args, table)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report(args, table, grid, results, meta)
    return 0


def record_command(args) -> int:
    out = record(args.storage, args.name, args.out)
    table = Table.load(out)
    n_rows = sum(len(c) for seeds in table.curves.values() for c in seeds)
    print(f"{out}.csv: {len(table.configs)} configs, {n_rows} epochs; best {table.best()[0]} "
          f"(true value {table.best()[1]:.4f})")
    return 0


def run_command(args, table: Table) -> tuple[np.ndarray, list[StrategyResult], dict]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    strategies = {k: STRATEGIES[k] for k in (args.strategies or STRATEGIES)}
    fifo_epochs = int(np.mean([len(c) for seeds in table.curves.values() for c in seeds]) * len(table.configs))
    budget = args.budget or fifo_epochs
    best, value = table.best()
    n_seeded = sum(len(s) > 1 for s in table.curves.values())
    log.info("table %s: %d configs (%d with several seeds), max %d epochs; best %s, true value %.4f",
             args.table.name, len(table.configs), n_seeded, table.meta["max_t"], best, value)
    log.info("replaying %d strategies x %d searcher seeds, %d epochs each, %d trials at once", len(strategies),
             args.seeds, budget, args.concurrency)
    start = time.perf_counter()
    total = len(strategies) * args.seeds

    def progress(name, seed, done=[0]):  # noqa: B006 - a counter across calls
        done[0] += 1
        log.info("[%d/%d] %s, seed %d (%.0f s)", done[0], total, name, seed, time.perf_counter() - start)

    grid, results = replay(table, strategies, args.seeds, budget, args.concurrency, args.time_scale, progress)
    meta = {"seeds": args.seeds, "budget": budget, "concurrency": args.concurrency}
    if args.save:
        save_results(args.save, grid, results, meta)
    return grid, results, meta


def report(args, table: Table, grid: np.ndarray, results: list[StrategyResult], meta: dict) -> None:
    """Print the table, draw the any-time plot, write the RESULTS.md section."""
    header, rows = summary_rows(grid, results, meta["budget"])
    text = markdown(header, rows)
    print(text)
    _, value = table.best()
    title = (f"{table.meta['space']} replayed on {args.table.name}: {len(table.configs)} configs, {meta['seeds']} "
             f"searcher seeds, {meta['concurrency']} trials at once")
    figure = plot(grid, results, args.plot or args.table.with_name(args.table.name + "-anytime.png"), title)
    seconds = sum(r.seconds for r in results)
    print(f"any-time plot: {figure}")
    print(f"replay time: {seconds:.0f} s of replays ({seconds / max(1, meta['seeds'] * len(results)):.1f} s each)")
    if not args.no_write:
        write_section(f"replay {args.table.name}", f"### Search replay on `{args.table.name}` ({len(table.configs)} "
                      f"configs, best true value {value:.4f}; {meta['seeds']} searcher seeds, budget {meta['budget']} "
                      f"epochs, {meta['concurrency']} trials at once; {seconds:.0f} s of replays)\n\n{text}\n")


if __name__ == "__main__":
    sys.exit(main())
