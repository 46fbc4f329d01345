"""The ladder's final trainings: as many at once as the cores allow, against one after another, side by side.

    python benchmarks/ladder_busy.py --storage runs [--studies A,B] [--seeds S] [--work /tmp/ladder_busy]

``--storage`` holds the ladder's studies, finished (a ladder run once, or its studies
alone). Each way gets a copy of it without its ``ladder/`` folder, so that both train
the same runs from nothing:

- ``at once``: the ladder's default, one CPU per run, as many runs at once as there are cores;
- ``one after another``: ``--max-concurrent 1`` with every core for the one run
  (``--cpus-per-trial`` = the cores: torch's threads).

For each it prints the final-training phase's wall time and how busy the cores were:
CPU time / (wall x cores), from ``/proc/stat`` (the whole machine: run it on an
otherwise idle one), over the phase from the ladder's line ``final trainings: N rows``
(Ray's start included) to its line ``final trainings: N runs ended``. Then the ratio
of the walls, and each ladder's whole time (its studies present: read, not run).
Writes the ``ladder-busy`` section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.results_md import write_section  # noqa: E402

BEGIN = re.compile(r"^final trainings: \d+ rows, \d+ runs")
END = re.compile(r"^final trainings: (\d+) runs ended in")
SAMPLE_S = 0.5


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot: total less idle and iowait is busy."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest time is inside user)
    return total - fields[3] - fields[4], total


def run_ladder(storage: Path, studies: str, seeds: int | None, flags: list[str]) -> dict:
    """Run the ladder on ``storage``; the final-training phase's wall time, CPU use and run count, and the whole
    command's wall time."""
    cmd = [sys.executable, "-m", "trainables.ladder", "--storage", str(storage), "--studies", studies, *flags]
    if seeds is not None:
        cmd += ["--seeds", str(seeds)]
    marks: dict[str, tuple[float, tuple[int, int]]] = {}
    ended = {}
    tail: list[str] = []

    def read(stream) -> None:  # the ladder logs to stderr: mark the phase's start and end as they are written
        for line in stream:
            tail.append(line)
            del tail[:-40]
            if BEGIN.match(line) and "begin" not in marks:
                marks["begin"] = (time.monotonic(), cpu_jiffies())
            found = END.match(line)
            if found:
                marks["end"] = (time.monotonic(), cpu_jiffies())
                ended["runs"] = int(found.group(1))

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    begun = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    reader = threading.Thread(target=read, args=(proc.stderr,), daemon=True)
    reader.start()
    code = proc.wait()
    reader.join()
    ladder_wall = time.monotonic() - begun
    if code != 0 or "begin" not in marks or "end" not in marks:
        sys.exit(f"the ladder on {storage} failed (exit {code}):\n{''.join(tail)}")
    (t0, (busy0, total0)), (t1, (busy1, total1)) = marks["begin"], marks["end"]
    return {"wall": t1 - t0, "busy": (busy1 - busy0) / max(total1 - total0, 1), "runs": ended["runs"],
            "ladder": ladder_wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--storage", type=Path, required=True, help="a folder holding the ladder's finished studies")
    parser.add_argument("--studies", default="ridge_pixels,layer_sweep,shallow_cnn,vgg_depth,decoder_head")
    parser.add_argument("--seeds", type=int, help="final trainings per network row (the ladder's default: 3)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ladder_busy"), help="where the copies go")
    args = parser.parse_args()
    missing = [s for s in args.studies.split(",") if not (args.storage / s).is_dir()]
    if missing:
        sys.exit(f"error: --storage {args.storage} has no study {', '.join(missing)}: run the ladder there first")
    cores = os.cpu_count() or 1
    ways = {"at once": [], "one after another": ["--max-concurrent", "1", "--cpus-per-trial", str(cores)]}
    results = {}
    for way, flags in ways.items():
        copy = args.work / way.replace(" ", "_")
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(args.storage, copy, ignore=lambda folder, names: ["ladder"] if Path(folder) == args.storage
                        else [])
        print(f"{way}: {' '.join(flags) or 'the default'} ...", flush=True)
        results[way] = run_ladder(copy, args.studies, args.seeds, flags)
        r = results[way]
        print(f"  {r['runs']} runs in {r['wall']:.0f} s, cores busy {r['busy']:.2f}; the ladder in all "
              f"{r['ladder']:.0f} s", flush=True)
    base, other = results["at once"], results["one after another"]
    ratio = other["wall"] / base["wall"]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = (f"python benchmarks/ladder_busy.py --storage STUDIES --studies {args.studies}"
               + (f" --seeds {args.seeds}" if args.seeds is not None else ""))
    lines = [f"`{command}`, {cores} CPU cores, no GPU, {when}; the same "
             f"{base['runs']} final trainings both ways, from the same finished studies.", "",
             "| way | flags | final trainings (wall) | cores busy: CPU time / (wall x cores) | the ladder in all |",
             "| --- | --- | --- | --- | --- |"]
    for way, flags in ways.items():
        r = results[way]
        lines.append(f"| {way} | {' '.join(flags) or '(default)'} | {r['wall']:.0f} s | {r['busy']:.2f} | "
                     f"{r['ladder'] / 60:.1f} min |")
    lines += ["", f"One after another takes {ratio:.2f}x the wall time of at once."]
    print("\n" + "\n".join(lines))
    write_section("ladder-busy", "\n".join(lines))


if __name__ == "__main__":
    main()
