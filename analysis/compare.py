"""The report's Table 1 for this project's runs: one row per final-trained model.

    python -m analysis.compare [--storage DIR] [--out FILE]

Reads every ``metrics.json`` written by ``trainables.train`` under ``<storage>/train``
(with the object and category ideal observers of each data set the models were scored on:
each image predicted by its label's mean training response, no pixels) and writes a Markdown table (``--out``, default ``<storage>/compare.md``), the same
as CSV beside it, and a bar chart of validation EV in the style of :mod:`analysis.style`:
the axis spans the bulk of the models and the references (the noise ceiling, the
ideal observers, drawn as labelled lines), a bar beyond it is cut at the axis and
labelled with its value.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from analysis.limits import outside, robust_limits  # noqa: E402
from analysis.style import NOISE_CEILING, Drawn, cut_bars, reference_lines, save, set_limits  # noqa: E402
from trainables.core.layout import COMPARE_FILE, TRAIN_DIR  # noqa: E402
from trainables.core.usage import Parser, fail  # noqa: E402
from trainables.study.records.trainings import TrainingDamaged, read_training, training_files  # noqa: E402

COLUMNS = ("model", "EV", "EV sd", "mean r", "median r", "noise ceiling EV", "seeds", "data")
# A row's field, beside the table's columns: the observer's name for an ideal observer's row (a reference, no model),
# else None.
OBSERVER = "observer"


def collect(storage: Path) -> list[dict]:
    """One row per trained model folder (a ``--seeds N`` folder counts once, with its spread), and one per ideal
    observer and score (field :data:`OBSERVER`: its name; None for a model)."""
    rows, references = [], {}
    for path in training_files(storage):
        m = read_training(path)
        ev, r_mean, r_median = m["ev"], m["r_mean"], m["r_median"]
        rows.append({"model": path.parent.name, "EV": ev, "EV sd": m.get("ev_std"),
                     "mean r": r_mean, "median r": r_median,
                     "noise ceiling EV": m.get("noise_ceiling_ev"), "seeds": len(m.get("seeds") or [m.get("seed")]),
                     "data": m.get("data_fingerprint", ""), OBSERVER: None})
        # The ideal observers of the data each model was scored on. They read labels and responses only, so the
        # renderings of one data seed at several resolutions (other fingerprints) give the same scores: one row
        # per observer and score, naming every data set it stands for.
        for name, ev in (m.get("references") or {}).items():
            references.setdefault((name, ev, rows[-1]["noise ceiling EV"]), set()).add(rows[-1]["data"])
    observers = [{"model": f"{name} (labels only)", "EV": ev, "EV sd": None, "mean r": None, "median r": None,
                  "noise ceiling EV": ceiling, "seeds": "", "data": ", ".join(sorted(data)), OBSERVER: name}
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
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _single(values) -> float | None:
    """The one value of a reference shared by every row that has it, else None (models scored on several data
    sets: each bar keeps its own)."""
    found = {v for v in values if v is not None}
    return found.pop() if len(found) == 1 else None


def plot_bars(rows: list[dict], path: Path) -> Drawn:
    """Validation EV (%) per row: models blue, ideal observers grey; the noise ceiling and the observers as lines.

    The axis spans the bulk of the bars and the references, with 0 (:func:`analysis.limits.robust_limits`): a
    model far below the others (a linear map of pixels at -59 %) is cut at the axis, marked and labelled with its
    value, and the others stay readable.
    """
    fig, ax = plt.subplots(figsize=(max(8, 1.1 * len(rows) + 3.5), 5))
    x = list(range(len(rows)))
    ev = [100 * r["EV"] for r in rows]
    observer = [r.get(OBSERVER) is not None for r in rows]
    # One line per observer and for the ceiling where every row agrees on it; else a tick on each bar.
    lines = {}
    for name in dict.fromkeys(r[OBSERVER] for r in rows if r.get(OBSERVER)):
        value = _single(r["EV"] for r in rows if r.get(OBSERVER) == name)
        if value is not None:
            lines[name] = 100 * value
    ceiling = _single(r["noise ceiling EV"] for r in rows)
    if ceiling is not None:
        lines[NOISE_CEILING] = 100 * ceiling
    per_bar = [100 * r["noise ceiling EV"] for r in rows if r["noise ceiling EV"] is not None]
    limits = robust_limits(ev, [0.0, *lines.values(), *([] if ceiling is not None else per_bar)])
    colors = ["tab:gray" if ref else "tab:blue" for ref in observer]
    cut = cut_bars(ax, x, ev, limits, colors, fmt="{:.1f} %", width=0.7)
    inset = 0.01 * (limits.high - limits.low)
    for i in x:  # every bar's value: models a few points apart under a ceiling at 80 % are told apart by it
        if i not in cut:
            ax.text(i, ev[i] + (inset if ev[i] >= 0 else -inset), f"{ev[i]:.1f}", ha="center",
                    va="bottom" if ev[i] >= 0 else "top", fontsize=8)
    sd = [100 * (r["EV sd"] or 0) for r in rows]
    shown = [i for i in x if sd[i] and i not in cut]
    if shown:
        ax.errorbar(shown, [ev[i] for i in shown], yerr=[sd[i] for i in shown], fmt="none", ecolor="k", capsize=3)
    if ceiling is None and per_bar:
        ax.scatter(x, [100 * r["noise ceiling EV"] if r["noise ceiling EV"] is not None else float("nan")
                       for r in rows], marker="_", s=400, color="k", label=NOISE_CEILING)
    ax.axhline(0, color="k", lw=0.8)
    set_limits(ax, limits)
    reference_lines(ax, lines, fmt="{:.1f} %")
    ax.bar([0], [0], color="tab:blue", label="model (validation EV)")
    if any(observer):
        ax.bar([0], [0], color="tab:gray", label="ideal observer (labels only)")
    ax.set_xticks(x, [r["model"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel("explained variance (%)")
    ax.legend(frameon=False, fontsize=8, loc="best")
    out = outside([r["model"] for r in rows], ev, limits)
    return save(fig, path, "Validation EV of every trained model (blue) and of the ideal observers (grey, labels "
                "only), with the noise ceiling: a model of IT should beat the observers; the ceiling is what the "
                "data's noise allows.", out, limits, what="model", dpi=110, unit=" %")


def main(argv=None) -> int:
    parser = Parser(prog="python -m analysis.compare", description=__doc__.split("\n")[0])
    parser.add_argument("--storage", type=Path, default=Path("runs"))
    parser.add_argument("--out", type=Path, help=f"Markdown file (default: <storage>/{COMPARE_FILE})")
    args = parser.parse_args(argv)
    try:
        rows = collect(args.storage)
    except TrainingDamaged as err:
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
