"""Trials packed onto one device: aggregate images/s with 1, 2 and 4 trials at once, side by side.

Runs the same small search (random sampler, no early stopping) once per packing level:
on a GPU with ``--gpus-per-trial 1/k``, on the CPU with ``--cpus-per-trial cores/k``. From
the trials' own results it prints when each trial ran (to show them side by side) and the
aggregate training images/s, with the ratio to one trial at a time.

    python benchmarks/packing.py --space shallow_cnn --levels 1 2 4 [--storage /tmp/packing]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def trial_spans(folder: Path) -> list[dict]:
    """Per trial: start, end (unix s) and training images processed, from result.json."""
    spans = []
    for path in sorted(folder.glob("trial_*/result.json")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not rows:
            continue
        images = sum(r["images_per_s"] * r["epoch_seconds"] for r in rows if "images_per_s" in r)
        start = rows[0]["timestamp"] - rows[0]["time_this_iter_s"]
        spans.append({"trial": path.parent.name, "start": start, "end": rows[-1]["timestamp"], "images": images,
                      "node": rows[-1].get("node_id", "")[:8]})
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="shallow_cnn")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4], help="trials at once")
    parser.add_argument("--trials-per-level", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--storage", type=Path, default=Path("/tmp/packing"))
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more flags for the search")
    args = parser.parse_args()
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    import torch

    gpu = torch.cuda.is_available()
    cores = os.cpu_count() or 1
    shutil.rmtree(args.storage, ignore_errors=True)
    table = []
    for k in args.levels:
        name = f"pack{k}"
        share = ["--gpus-per-trial", f"{1 / k:g}", "--cpus-per-trial", "1"] if gpu else \
            ["--cpus-per-trial", f"{max(cores // k, 1)}", "--gpus-per-trial", "0"]
        cmd = [sys.executable, "-m", "trainables.search", "--space", args.space, "--name", name, "--storage",
               str(args.storage), "--num-samples", str(max(args.trials_per_level, k)), "--max-epochs",
               str(args.epochs), "--grace-period", str(args.epochs), "--searcher", "random",
               "--recheck-top", "0", "--max-concurrent", str(k), *share, *extra]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"search failed at {k} trials at once:\n{done.stderr[-2000:]}")
        spans = trial_spans(args.storage / name)
        t0 = min(s["start"] for s in spans)
        wall = max(s["end"] for s in spans) - t0
        rate = sum(s["images"] for s in spans) / wall
        print(f"\n{k} trial(s) at once ({' '.join(share)}): trial start -> end (s after the first start)")
        for s in sorted(spans, key=lambda s: s["start"]):
            print(f"  {s['trial']}  {s['start'] - t0:7.1f} -> {s['end'] - t0:7.1f}  node {s['node']}")
        table.append((k, wall, rate))
    device = torch.cuda.get_device_name() if gpu else f"CPU ({cores} cores)"
    print(f"\n{args.space}, {args.trials_per_level} trials x {args.epochs} epochs per level, on {device}")
    print("trials at once | wall (s) | aggregate images/s | vs. 1 at a time")
    for k, wall, rate in table:
        print(f"{k:14d} | {wall:8.1f} | {rate:18.0f} | {rate / table[0][2]:.2f}x")


if __name__ == "__main__":
    main()
