"""What a trial costs besides its fit: per-trial wall-clock time outside the epochs, two ways side by side.

    python benchmarks/trial_overhead.py [--trials 8] [--epochs 3] [--readout-trials 12] [--smoke-trials 4]

Runs, in this process, a study of tiny network trials (``shallow_cnn`` at 32 px),
one of readout trials (``ridge_pixels`` at 32 px) and one of the main job's network
trials (``vgg_depth`` at the smoke profile's sizes, every trial to its end), each
twice: every trial in a new Ray worker (``reuse off``), and workers reused across
trials (``reuse on``, the search's default). Per trial it measures, from the driver
(one clock):

- ``start``: from the searcher's suggestion to the start of the first epoch
  (scheduling, worker start, imports, data from the object store, model build);
- ``between``: the gaps between epochs beyond the epochs' own time (reporting,
  checkpoints, the driver's MLflow logging when it holds the trial up);
- ``end``: from the last result to the trial's end in the driver;
- ``fit``: the epochs themselves (their ``epoch_seconds``),

and prints the per-trial means, the overhead's share of a trial's time, and the
ratio of the two ways. The tiny studies keep the fit short, so that the overhead
shows; the smoke study is what the overhead costs a user's first study (on a GPU at
report scale the same overhead sits beside epochs of about a second).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ray import tune  # noqa: E402

from trainables.core.usage import quiet_libraries  # noqa: E402
from trainables.search import new_study, parse_args  # noqa: E402
from trainables.study.plan.run_options import RunOptions  # noqa: E402
from trainables.study.run.cluster import RayStart, set_ray_environment  # noqa: E402


class Timing(tune.Callback):
    """Driver-side timestamps of every trial's results and end."""

    def __init__(self):
        self.results: dict[str, list[tuple[float, dict]]] = {}
        self.ended: dict[str, float] = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.results.setdefault(trial.trial_id, []).append((time.time(), result))

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.ended[trial.trial_id] = time.time()

    on_trial_error = on_trial_complete


def run(space: str, flags: list[str], reuse: bool, storage: Path) -> list[dict]:
    """One study in this process; per trial its start / between / end / fit seconds."""
    from trainables.study.run import runner  # imports Ray: after its environment is set

    args = parse_args(["--space", space, "--storage", str(storage), "--name", f"{space}_{reuse}", "--recheck-top",
                       "0", "--profile", "smoke", "--resolution", "32", *flags])
    plan, data, probed = new_study(args)
    timing = Timing()

    searchers = []

    class TimedStudy(runner.Study):
        def run_config(self, name, storage_path, phase, observed=None):
            config = super().run_config(name, storage_path, phase, observed)
            config.callbacks.append(timing)
            if observed is not None:  # the searcher's own method: its records say when it suggested each trial
                searchers.append(observed.__self__)
            return config

    study = TimedStudy(plan, storage / plan.name, data, probed, RunOptions(reuse_workers=reuse))
    ray_start = RayStart(None)
    try:
        study.start(new=True, ray_start=ray_start)
        study.run_search(resume=False)
        study.finish()
        suggested = {tid: seen[0] for tid, seen in searchers[0].records["seen"].items()}
    finally:
        ray_start.close()
    rows = []
    for tid, results in timing.results.items():
        epochs = [r.get("epoch_seconds", 0.0) for _, r in results]
        times = [t for t, _ in results]
        start = times[0] - epochs[0] - suggested[tid]
        between = sum(max(times[i] - times[i - 1] - epochs[i], 0.0) for i in range(1, len(times)))
        end = timing.ended.get(tid, times[-1]) - times[-1]
        rows.append({"start": start, "between": between, "end": end, "fit": sum(epochs)})
    return rows


def summarize(name: str, rows: list[dict]) -> dict:
    mean = {k: statistics.mean(r[k] for r in rows) for k in ("start", "between", "end", "fit")}
    mean["overhead"] = mean["start"] + mean["between"] + mean["end"]
    mean["share"] = mean["overhead"] / (mean["overhead"] + mean["fit"])
    print(f"| {name} | {len(rows)} | {mean['start']:.2f} | {mean['between']:.2f} | {mean['end']:.2f} | "
          f"{mean['overhead']:.2f} | {mean['fit']:.2f} | {mean['share']:.0%} |", flush=True)
    return mean


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=8, help="network trials per study")
    p.add_argument("--epochs", type=int, default=3, help="epochs of a network trial")
    p.add_argument("--readout-trials", type=int, default=12)
    p.add_argument("--smoke-trials", type=int, default=4,
                   help="trials of the main job's space at the smoke profile (0: skip that study)")
    args = p.parse_args(argv)
    quiet_libraries()
    set_ray_environment(None)
    studies = {
        "network (shallow_cnn, 32 px)": ("shallow_cnn", ["--num-samples", str(args.trials), "--max-epochs",
                                                          str(args.epochs), "--scheduler", "fifo",
                                                          "--images-per-object", "10"]),
        "readout (ridge_pixels, 32 px)": ("ridge_pixels", ["--num-samples", str(args.readout_trials),
                                                            "--images-per-object", "10"]),
    }
    if args.smoke_trials:
        studies["network (vgg_depth, smoke profile)"] = ("vgg_depth", ["--num-samples", str(args.smoke_trials),
                                                                       "--scheduler", "fifo"])
    print("| study, workers | trials | start s | between s | end s | overhead s / trial | fit s / trial | "
          "overhead share |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="trial_overhead_") as folder:
        for name, (space, flags) in studies.items():
            means = {}
            for reuse in (False, True):
                rows = run(space, flags, reuse, Path(folder))
                means[reuse] = summarize(f"{name}, reuse {'on' if reuse else 'off'}", rows)
            print(f"| {name}: overhead per trial, reuse off / on | | | | | "
                  f"{means[False]['overhead'] / max(means[True]['overhead'], 1e-9):.2f}x | | |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
