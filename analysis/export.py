"""Export the best configuration of a search, in the format ``trainables.train`` reads.

    python -m analysis.export --experiment NAME [--storage DIR] [--out FILE] [--top K]

Redoes from the files alone (no Ray cluster) what a search writes at its end
(:mod:`trainables.study.export.best_config`): ``best_config.json`` (the re-check's best mean
when the search ran one, else the best completed trial) and ``trials.csv``.
``--top K`` prints the K best (the re-check table when there is one) and writes
them to ``topK.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from trainables.core.usage import Parser, fail
from trainables.study.export.best_config import NothingToExport, export, rechecked, top_lines
from trainables.study.plan.search_plan import PlanError, read_plan
from trainables.study.records.trials import StudyDamaged, StudyNotFound, load_trials, study_folder


def main(argv=None) -> int:
    parser = Parser(prog="python -m analysis.export", description=__doc__.split("\n")[0])
    parser.add_argument("--experiment", required=True, help="the study's name (its --name)")
    parser.add_argument("--storage", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, help="where best_config.json goes (default: in the study's folder)")
    parser.add_argument("--top", type=int, default=0, help="print the K best and write topK.json")
    args = parser.parse_args(argv)
    if args.top < 0:
        fail(f"--top must be >= 0, got {args.top}")
    if args.out is not None and args.out.is_dir():
        fail(f"--out {args.out} is a folder; give a file name, e.g. {args.out / 'best_config.json'}")
    try:
        out, config = export(args.storage, args.experiment, args.out, args.top)
        folder = study_folder(args.storage, args.experiment)
        trials = load_trials(folder) if args.top else []
        rows = rechecked(read_plan(folder), trials) if args.top else []
    except (StudyNotFound, StudyDamaged, PlanError, NothingToExport) as err:
        fail(str(err))
    except OSError as err:
        fail(f"cannot write {err.filename}: {err.strerror}")
    p = config["provenance"]
    how = ""
    if p.get("recheck"):
        top = p["recheck"]["table"][0]
        how = f"best re-check mean {top['mean']:.4f} +- {top['se']:.4f} over {top['n']} seeds; in the search "
    print(f"exported trial {p['trial_id']}: {how}{p['metric']} {p['value']:.4f} after {p['epochs_reached']} epochs "
          f"-> {out}")
    if args.top:
        print("\n".join(top_lines(rows, trials, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
