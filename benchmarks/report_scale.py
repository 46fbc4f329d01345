"""Report-scale rehearsal on a CPU: 224-px synthetic data at the real sizes, through the real search.

    python benchmarks/report_scale.py [--storage DIR] [--batches-per-epoch 3] [--studies ...]

Runs, one after another, a search of two trials at once of each study (default:
``shallow_cnn``, ``ridge_pixels`` and ``decoder_head``, whose first trial is the
report's ResNet-34 + 7000-7000 recipe), one epoch each, on the synthetic data at
224 px with 2,592 / 288 / 320 images. A CPU epoch of ResNet-34 at 224 px takes
many minutes, so this rehearsal alone caps the batches per epoch: it sets Ray's
``RAY_RUNTIME_ENV_HOOK`` to :func:`runtime_env_hook`, which gives every Ray worker
of the search the setup hook :func:`cap_batches`; every other size is the real one.

Measured from outside the search (so that two versions of the code can be
compared with the same script): every 0.5 s the memory of each Ray worker
process (``/proc/PID/smaps_rollup``: private = memory that is the process's own,
not the shared object-store pages holding the images), and the size of each
checkpoint folder in the storage tree. Per trial it prints the peak private and
resident memory, the bytes of its largest checkpoint, the seconds it spent saving
checkpoints (as the trial reports them; older code did not, so the column then
shows Ray's time between reports minus the epoch's own time, which also holds
the trial's set-up) against its epoch and total seconds, and at the end the
bytes left in the storage folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

GIB, MIB = 1024**3, 1024**2
STUDIES = ("shallow_cnn", "ridge_pixels", "decoder_head")
CAP_ENV = "REPORT_SCALE_BATCHES_PER_EPOCH"
ROOT = Path(__file__).resolve().parents[1]


def runtime_env_hook(runtime_env: dict | None) -> dict:
    """Ray's ``RAY_RUNTIME_ENV_HOOK``, called by ``ray.init`` in the search: every worker runs :func:`cap_batches`."""
    return {**(runtime_env or {}), "worker_process_setup_hook": "benchmarks.report_scale.cap_batches"}


def cap_batches() -> None:
    """A Ray worker's setup hook: every epoch of a network trains on its first ``$REPORT_SCALE_BATCHES_PER_EPOCH``
    batches only."""
    from trainables.fitting.loop import Trainer

    cap, stops = int(os.environ[CAP_ENV]), Trainer.batch_stops
    Trainer.batch_stops = lambda self: stops(self)[:cap]


def smaps(pid: int) -> dict[str, int] | None:
    """Rss / Pss / Private_* / Shared_* of a process in bytes (Linux), None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[-1] == "kB":
            out[key.strip()] = int(parts[0]) * 1024
    return out


def ray_workers() -> list[int]:
    """PIDs of Ray worker processes running a trial (their command line starts with ``ray::``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("ray::") and "IDLE" not in cmd:
            pids.append(int(entry.name))
    return pids


def folder_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


class Sampler(threading.Thread):
    """Peak memory per worker PID and peak size per checkpoint folder, sampled every ``period`` s."""

    def __init__(self, storage: Path, period: float = 0.5):
        super().__init__(daemon=True)
        self.storage, self.period = storage, period
        self.memory: dict[int, dict[str, int]] = {}
        self.checkpoints: dict[str, int] = {}
        self.peak_storage = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for pid in ray_workers():
                m = smaps(pid)
                if not m:
                    continue
                private = m.get("Private_Clean", 0) + m.get("Private_Dirty", 0)
                peak = self.memory.setdefault(pid, {"private": 0, "rss": 0})
                peak["private"] = max(peak["private"], private)
                peak["rss"] = max(peak["rss"], m.get("Rss", 0))
            for ckpt in self.storage.glob("*/trial_*/checkpoint_*"):
                key = str(ckpt.parent.name)
                self.checkpoints[key] = max(self.checkpoints.get(key, 0), folder_bytes(ckpt))
            if self.storage.exists():
                self.peak_storage = max(self.peak_storage, folder_bytes(self.storage))
            self.stop.wait(self.period)


def trial_rows(study_folder: Path, sampler: Sampler) -> list[dict]:
    rows = []
    for result in sorted(study_folder.glob("trial_*/result.json")):
        lines = [json.loads(x) for x in result.read_text().splitlines() if x.strip()]
        if not lines:
            continue
        last = lines[-1]
        pid = last.get("pid")
        mem = sampler.memory.get(pid, {})
        epoch_s = sum(r.get("epoch_seconds", 0.0) for r in lines)
        iter_s = sum(r.get("time_this_iter_s", 0.0) for r in lines)
        own = [r for r in lines if "checkpoint_saves" in r]  # what newer trials report themselves
        rows.append({
            "trial": result.parent.name,
            "epochs": len(lines),
            "private_gib": mem.get("private", 0) / GIB,
            "rss_gib": mem.get("rss", 0) / GIB,
            "ckpt_mib": sampler.checkpoints.get(result.parent.name, 0) / MIB,
            # The last report's own save is counted in the next report; the final one is not in any.
            "saves": own[-1]["checkpoint_saves"] if own else None,
            "save_s": own[-1]["checkpoint_seconds"] if own else max(iter_s - epoch_s, 0.0),
            "epoch_s": epoch_s,
            "trial_s": last.get("time_total_s", iter_s),
        })
    return rows


def setup_cost() -> str:
    """Private memory one training set-up adds, beyond the images it trains on (in this process).

    The report's ResNet-34 + 7000-7000 recipe on the 224-px images: memory of this
    process before and after ``Trainer(config, data)`` (model, optimiser, whatever
    the set-up copies), before any batch, so CPU activations are not in it.
    """
    import gc

    from trainables.data.datasets import load_synthetic
    from trainables.data.synthetic import SyntheticSpec
    from trainables.fitting.families import complete
    from trainables.fitting.loop import Trainer

    data = load_synthetic(SyntheticSpec(seed=0, resolution=224, images_per_object=50))
    config = complete({"backbone": "resnet34", "head_hidden": [7000, 7000], "head_dropout": 0.52,
                              "optimizer": "adam", "lr": 1e-4, "batch_size": 128})
    gc.collect()
    before = smaps(os.getpid())
    trainer = Trainer(config, data)
    after = smaps(os.getpid())
    private = sum(after.get(k, 0) - before.get(k, 0) for k in ("Private_Clean", "Private_Dirty"))
    params = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    return (f"Trainer set-up, ResNet-34 + 7000-7000 head, {len(data.stimulus_train)} training images at 224 px "
            f"({data.stimulus_train.nbytes / GIB:.2f} GiB): adds {private / GIB:.2f} GiB private memory "
            f"(model parameters {params / GIB:.2f} GiB)")


def run_study(space: str, storage: Path, args) -> tuple[list[dict], dict]:
    cmd = [sys.executable, "-m", "trainables.search", "--space", space, "--profile", "smoke",
           "--resolution", "224", "--images-per-object", "50", "--max-epochs", "1", "--num-samples", "2",
           "--max-concurrent", "2", "--recheck-top", "0", "--storage", str(storage), "--name", space, *args.extra]
    env = {**os.environ, CAP_ENV: str(args.batches_per_epoch), "RAY_RUNTIME_ENV_HOOK": "benchmarks.report_scale.runtime_env_hook",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    sampler = Sampler(storage)
    sampler.start()
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    sampler.stop.set()
    sampler.join()
    log = storage / f"{space}.log"
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        print(f"{space}: search exited {done.returncode}; see {log}", file=sys.stderr)
    folder = storage / space
    return trial_rows(folder, sampler), {"seconds": seconds, "rc": done.returncode,
                                         "left": folder_bytes(folder), "peak": sampler.peak_storage}


def summarize(folder: Path) -> str:
    """Per-trial figures a finished search's trials reported themselves (any machine, e.g. a GPU search)."""
    out = [f"{'trial':<16} {'ep':>3} {'s/epoch':>8} {'img/s':>7} {'saves':>5} {'save s':>7} {'share':>6} "
           f"{'RSS GiB':>8} {'GPU GiB':>8}"]
    for result in sorted(Path(folder).glob("trial_*/result.json")):
        rows = [json.loads(x) for x in result.read_text().splitlines() if x.strip()]
        if not rows:
            continue
        last = rows[-1]
        epoch_s = [r["epoch_seconds"] for r in rows]
        total = last.get("time_total_s", sum(epoch_s))
        out.append(f"{result.parent.name:<16} {len(rows):>3} {sum(epoch_s) / len(rows):>8.2f} "
                   f"{sum(r.get('images_per_s', 0) for r in rows) / len(rows):>7.0f} {last.get('checkpoint_saves', 0):>5} "
                   f"{last.get('checkpoint_seconds', 0):>7.2f} {last.get('checkpoint_seconds', 0) / total:>6.1%} "
                   f"{last.get('peak_rss_gib', 0):>8.2f} {last.get('peak_gpu_gib', 0):>8.2f}")
    out.append(f"storage left in {folder}: {folder_bytes(Path(folder)) / MIB:.0f} MiB")
    return "\n".join(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--storage", type=Path, default=Path("runs/report_scale"))
    p.add_argument("--batches-per-epoch", type=int, default=3, help="cap, this rehearsal only (CPU time)")
    p.add_argument("--studies", default=",".join(STUDIES))
    p.add_argument("--setup-only", action="store_true", help="only measure the set-up of one training")
    p.add_argument("--summarize", type=Path, help="only print the trials' own figures of a finished search FOLDER")
    p.add_argument("extra", nargs="*", help="more flags for trainables.search (after --)")
    args = p.parse_args()
    if args.setup_only:
        print(setup_cost())
        return 0
    if args.summarize:
        print(summarize(args.summarize))
        return 0
    if args.storage.exists() and any(args.storage.iterdir()):
        p.error(f"{args.storage} is not empty: give a new --storage")
    args.storage.mkdir(parents=True, exist_ok=True)
    head = (f"{'study':<13} {'trial':<18} {'ep':>2} {'private GiB':>11} {'RSS GiB':>8} {'ckpt MiB':>9} "
            f"{'saves':>5} {'save s':>7} {'epoch s':>8} {'trial s':>8} {'save/trial':>10}")
    lines = []
    for space in args.studies.split(","):
        rows, totals = run_study(space, args.storage, args)
        for r in rows:
            saves = "" if r["saves"] is None else str(r["saves"])
            lines.append(f"{space:<13} {r['trial']:<18} {r['epochs']:>2} {r['private_gib']:>11.2f} {r['rss_gib']:>8.2f} "
                         f"{r['ckpt_mib']:>9.0f} {saves:>5} {r['save_s']:>7.2f} {r['epoch_s']:>8.1f} "
                         f"{r['trial_s']:>8.1f} {r['save_s'] / max(r['trial_s'], 1e-9):>10.1%}")
        lines.append(f"{space:<13} search {totals['seconds']:.0f} s (exit {totals['rc']}); storage peak "
                     f"{totals['peak'] / MIB:.0f} MiB, left at the end {totals['left'] / MIB:.0f} MiB")
        print(lines[-1], flush=True)
    print("\n" + head)
    print("\n".join(lines))
    print("\n" + setup_cost())
    return 0


if __name__ == "__main__":
    sys.exit(main())
