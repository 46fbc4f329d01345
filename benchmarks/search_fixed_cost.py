"""What a small search costs end to end, this checkout against an earlier commit, side by side.

    python benchmarks/search_fixed_cost.py --baseline REV [--runs 3]

A search's own trials are seconds at the smoke profile; the rest of its wall time is
fixed cost (imports, sampling the space, Ray's start, MLflow's store, workers, the
process's exit), paid by every study a user starts and by every search test. This
runs two small searches as a user runs them (``python -m trainables.search`` in a
subprocess, data already cached): ``ridge_pixels`` (4 readout trials) and
``shallow_cnn`` (2 network trials of 1 epoch), alternately from a worktree of
``REV`` and from this checkout, ``--runs`` times each, and prints per search the
median wall time of each and their ratio. Both use this checkout's virtualenv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--resolution", "32", "--images-per-object", "6", "--profile", "smoke", "--recheck-top", "0"]
SEARCHES = {
    "ridge_pixels, 4 readout trials": ["--space", "ridge_pixels", "--num-samples", "4", *SMOKE],
    "shallow_cnn, 2 trials of 1 epoch": ["--space", "shallow_cnn", "--num-samples", "2", "--max-epochs", "1",
                                         "--scheduler", "fifo", *SMOKE],
}


def timed_search(tree: Path, flags: list[str], storage: Path, env: dict) -> float:
    """Wall seconds of one search run from ``tree`` (its code first on the path); raises if it fails."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "trainables.search", "--storage", str(storage), *flags], cwd=tree,
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"error: the search failed in {tree}:\n{done.stderr[-2000:]}")
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", required=True, help="the commit to compare with (e.g. HEAD~3)")
    p.add_argument("--runs", type=int, default=3, help="runs of each search each way")
    args = p.parse_args(argv)
    rev = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT, capture_output=True, text=True)
    if rev.returncode != 0 or args.runs < 1:
        print(f"error: --baseline {args.baseline} is not a commit of this repository" if rev.returncode else
              "error: --runs must be >= 1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fixed_cost") as tmp:
        tmp = Path(tmp)
        baseline = tmp / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(baseline), args.baseline], cwd=ROOT, check=True)
        # One data cache for both, filled before the clock starts; the user's own cache is left alone.
        env = {**os.environ, "ITSEARCH_CACHE": str(tmp / "cache"), "PYTHONPATH": ""}
        ways = {f"{rev.stdout.strip()} (baseline)": baseline, "this checkout": ROOT}
        times = {(s, w): [] for s in SEARCHES for w in ways}
        try:
            for n, (search, flags) in enumerate(SEARCHES.items()):
                for k, tree in enumerate(ways.values()):  # warm-up: data drawn, caches filled, files in the page cache
                    timed_search(tree, flags, tmp / f"warm-{n}-{k}", env)
                for i in range(args.runs):
                    for k, (way, tree) in enumerate(ways.items()):  # a new storage folder each time, as a user's
                        seconds = timed_search(tree, flags, tmp / f"runs-{n}-{i}-{k}", env)
                        times[search, way].append(seconds)
                        print(f"{search}: {way}: {seconds:.1f} s", file=sys.stderr)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT)
    first, second = ways
    print(f"| search | {first} | {second} | ratio |")
    print("| --- | --- | --- | --- |")
    for search in SEARCHES:
        a, b = (statistics.median(times[search, w]) for w in ways)
        print(f"| {search} | {a:.1f} s | {b:.1f} s | {a / b:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
