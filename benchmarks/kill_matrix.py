"""Kill and resume: every scheduler, killed (SIGKILL) at each point of a study, then resumed.

    python benchmarks/kill_matrix.py [--storage DIR] [--schedulers asha hyperband fifo]

For each scheduler it first runs the study uninterrupted (the reference), then, for
each kill point, runs it again, kills the driver there, and resumes it:

- ``epoch``: while a trial is between two epochs (its first epoch reported, more to come);
- ``last report``: right after a trial reported its last epoch;
- ``re-check``: once the re-check's first trial has started;
- ``export``: while the study writes its export (its trials table appears).

Each row says whether the resumed study holds every trial once (none lost: as many
search trials as asked, none unfinished; none run twice: a trial that had ended before
the kill has the same results), no Optuna trial or MLflow run left RUNNING, no metric
step logged twice in MLflow, no Ray process of the killed driver alive 5 s after the
kill, and whether the exported config equals the reference's (expected when the kill
came before the last trial started). A small study on the 32-px smoke data: 4 trials
of ``shallow_cnn``, 3 epochs, the 2 best raced over at most 2 seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainables.core.layout import RECHECK_KEY  # noqa: E402
from trainables.study.run.watchdog import processes  # noqa: E402

STUDY = ["--space", "shallow_cnn", "--num-samples", "4", "--max-epochs", "3", "--grace-period", "1",
         "--recheck-top", "2", "--recheck-seeds", "2", "--resolution", "32", "--images-per-object", "6",
         "--profile", "smoke"]


def search(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "trainables.search", *args], capture_output=True, text=True)


def results(folder: Path) -> dict[str, list[dict]]:
    return {p.parent.name: [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
            for p in folder.rglob("trial_*/result.json")}


POINTS = {
    "epoch": lambda f: any(rows and not rows[-1].get("fit_done") for rows in results(f).values()),
    "last report": lambda f: any(rows and rows[-1].get("fit_done") for rows in results(f).values()),
    # A re-check run has started: round 1 in the search's own folder, later rounds under recheck/.
    "re-check": lambda f: any(RECHECK_KEY in p.read_text() for p in f.rglob("trial_*/params.json")),
    "export": lambda f: (f / "trials.csv").exists(),
}


def ray_left(session: str) -> int:
    table = processes()
    named = {pid for pid, (_, _, cmd) in table.items() if session in cmd}
    return len(named) + sum(cmd.startswith("ray::") and ppid in named | {1} for pid, (ppid, _, cmd) in table.items())


def exported(folder: Path) -> dict:
    config = json.loads((folder / "best_config.json").read_text())
    config.pop("provenance")
    return config


def check(storage: Path, name: str, before: dict[str, list[dict]]) -> dict:
    """What the resumed study holds, as the table's columns."""
    import optuna
    from mlflow.tracking import MlflowClient

    from trainables.study.plan.search_plan import read_plan
    from trainables.study.records.trials import load_trials, status_counts

    folder = storage / name
    trials = load_trials(folder)
    counts = status_counts(trials)
    after = results(folder)
    twice = [t for t, rows in before.items() if rows and rows[-1].get("fit_done") and t in after
             and max(r.get("epoch", r["training_iteration"]) for r in after[t]) != rows[-1].get("epoch")]
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'optuna.db'}")
    plan = read_plan(folder)
    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    runs = client.search_runs([plan.tracking.experiment_id], max_results=1000)
    duplicated = 0
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "inner_ev")]
        duplicated += len(steps) - len(set(steps))
    return {"trials": f"{sum(counts.values())}/{plan.num_samples}", "lost": counts["running"],
            "twice": len(twice), "optuna running": sum(t.state.name == "RUNNING" for t in study.trials),
            "mlflow running": sum(r.info.status == "RUNNING" for r in runs), "steps twice": duplicated}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--storage", type=Path, default=Path("runs/kill_matrix"))
    p.add_argument("--schedulers", nargs="+", default=["asha", "hyperband", "fifo"])
    p.add_argument("--points", nargs="+", default=list(POINTS), choices=list(POINTS))
    args = p.parse_args(argv)
    shutil.rmtree(args.storage, ignore_errors=True)
    ray_tmp = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray"
    print("| scheduler | killed at | resume rc | trials | lost | run twice | Optuna RUNNING | MLflow RUNNING | "
          "steps twice | Ray left 5 s after | export = uninterrupted |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for scheduler in args.schedulers:
        reference = args.storage / f"{scheduler}_reference"
        done = search(*STUDY, "--scheduler", scheduler, "--storage", str(reference), "--name", "study")
        if done.returncode:
            print(f"reference search failed: {done.stderr[-500:]}", file=sys.stderr)
            return 1
        expected = exported(reference / "study")
        for point in args.points:
            storage = args.storage / f"{scheduler}_{point.replace(' ', '_')}"
            folder = storage / "study"
            proc = subprocess.Popen([sys.executable, "-m", "trainables.search", *STUDY, "--scheduler", scheduler,
                                     "--storage", str(storage), "--name", "study"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            deadline = time.time() + 600
            while time.time() < deadline and proc.poll() is None and not (folder.is_dir() and POINTS[point](folder)):
                time.sleep(0.1)
            if proc.poll() is not None:
                print(f"| {scheduler} | {point} | (the study ended before the kill point) | | | | | | | | |")
                continue
            session = sorted(ray_tmp.glob("session_2*"))[-1].name
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = time.time()
            before = results(folder)
            time.sleep(max(0.0, killed + 5 - time.time()))
            left = ray_left(session)
            resumed = search("--resume", "--name", "study", "--storage", str(storage))
            if resumed.returncode:
                print(f"| {scheduler} | {point} | {resumed.returncode}: "
                      f"{resumed.stderr.strip().splitlines()[-1][:80]} | | | | | | | {left} | |", flush=True)
                continue
            row = check(storage, "study", before)
            same = "yes" if exported(folder) == expected else "no"
            print(f"| {scheduler} | {point} | 0 | {row['trials']} | {row['lost']} | {row['twice']} | "
                  f"{row['optuna running']} | {row['mlflow running']} | {row['steps twice']} | {left} | {same} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
