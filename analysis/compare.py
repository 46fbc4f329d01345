"""The report's Table 1 for this project's runs: one row per final-trained model.

    python -m analysis.compare [--storage DIR] [--out FILE]

Reads every ``metrics.json`` written by ``trainables.train`` under ``<storage>/train``
(with the object and category ideal observers of each data set the models were scored on:
each image predicted by its label's mean training response, no pixels) and writes a Markdown table (``--out``, default ``<storage>/compare.md``), the same
as CSV beside it, and a bar chart of validation EV with the noise ceiling.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trainables.core.layout import COMPARE_FILE, METRICS_FILE, TRAIN_DIR  # noqa: E402
from trainables.core.usage import Parser, fail  # noqa: E402

COLUMNS = ("model", "EV", "EV sd", "mean r", "median r", "noise ceiling EV", "seeds", "data")


class DamagedRun(ValueError):
    """A final training's ``metrics.json`` that cannot be read; the message names it."""


def collect(storage: Path) -> list[dict]:
    """One row per trained model folder (a ``--seeds N`` folder counts once, with its spread)."""
    rows, references = [], {}
    for path in sorted((Path(storage) / TRAIN_DIR).glob(f"*/{METRICS_FILE}")):
        try:
            m = json.loads(path.read_text())
            ev, r_mean, r_median = m["ev"], m["r_mean"], m["r_median"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DamagedRun(f"{path} cannot be read ({type(err).__name__}: {err}); train that model again, or "
                             "move its folder out of the way") from None
        rows.append({"model": path.parent.name, "EV": ev, "EV sd": m.get("ev_std"),
                     "mean r": r_mean, "median r": r_median,
                     "noise ceiling EV": m.get("noise_ceiling_ev"), "seeds": len(m.get("seeds") or [m.get("seed")]),
                     "data": m.get("data_fingerprint", "")})
        # The ideal observers of the data each model was scored on. They read labels and responses only, so the
        # renderings of one data seed at several resolutions (other fingerprints) give the same scores: one row
        # per observer and score, naming every data set it stands for.
        for name, ev in m.get("references", {}).items():
            references.setdefault((name, ev, rows[-1]["noise ceiling EV"]), set()).add(rows[-1]["data"])
    observers = [{"model": f"{name} (labels only)", "EV": ev, "EV sd": None, "mean r": None, "median r": None,
                  "noise ceiling EV": ceiling, "seeds": "", "data": ", ".join(sorted(data))}
                 for (name, ev, ceiling), data in references.items()]
    return sorted(rows + observers, key=lambda r: r["EV"])


def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{100 * value:.2f}" if isinstance(value, float) else str(value)


def write_markdown(rows: list[dict], path: Path) -> None:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r[c]) if c not in ("model", "data", "seeds") else str(r[c])
                                       for c in COLUMNS) + " |")
    lines.append("")
    lines.append("EV, r and ceiling in % on the official validation set; EV ceiling = split-half reliability "
                 "(Spearman-Brown) of the trial-averaged responses. Ideal observers (labels only): each image "
                 "predicted by its object's / category's mean training response; a model of IT should beat them.")
    Path(path).write_text("\n".join(lines) + "\n")


def write_csv(rows: list[dict], path: Path) -> None:
    with Path(path).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def plot_bars(rows: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4))
    x = range(len(rows))
    reference = ["labels only" in r["model"] for r in rows]
    ax.bar(x, [100 * r["EV"] for r in rows], yerr=[100 * (r["EV sd"] or 0) for r in rows],
           color=["tab:gray" if ref else "tab:blue" for ref in reference], capsize=3, label="validation EV")
    if any(reference):
        ax.bar([0], [0], color="tab:gray", label="ideal observer (labels only)")
    ceilings = [r["noise ceiling EV"] for r in rows]
    if any(c is not None for c in ceilings):
        ax.scatter(x, [100 * c if c is not None else float("nan") for c in ceilings], marker="_", s=400, color="k",
                   label="noise ceiling")
    ax.set_xticks(list(x), [r["model"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel("explained variance (%)")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = Parser(prog="python -m analysis.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--storage", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, help=f"Markdown file (default: <storage>/{COMPARE_FILE})")
    args = parser.parse_args(argv)
    try:
        rows = collect(args.storage)
    except DamagedRun as err:
        fail(str(err))
    if not rows:
        fail(f"no trained models under {args.storage / TRAIN_DIR} (run python -m trainables.train first)")
    out = args.out or args.storage / COMPARE_FILE
    write_markdown(rows, out)
    write_csv(rows, out.with_suffix(".csv"))
    plot_bars(rows, out.with_suffix(".png"))
    print(out.read_text(), end="")
    print(f"wrote {out}, {out.with_suffix('.csv')}, {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
