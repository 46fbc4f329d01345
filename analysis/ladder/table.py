"""Table 1 as files and as text: ``table.md``, ``table.csv`` and the lines the command prints.

The Markdown table and the page show EV, its SD, intervals and differences in % with
two decimals, Corr as r; the CSV keeps the raw fractions at full precision. The
ideal observers and the noise ceiling close the table, in a group of their own, as
its scale.
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import numpy as np

from analysis.ladder.rows import ENSEMBLE, MODEL, SEED_ENSEMBLE, Row, ceiling_counts
from analysis.ladder.rungs import ValData
from analysis.ladder.stats import CEILING_FLOOR, LEVEL, Difference

log = logging.getLogger(__name__)

TABLE_MD = "table.md"
TABLE_CSV = "table.csv"
REFERENCE = "reference"
SCALE_GROUP = "for scale"
RESOLVED = "*"
HEADER = ("group", "row", "study", "EV (%)", "SD", "95 % interval", "ceiled EV (%)", "Corr", "Δ EV (95 % interval)",
          "seeds", "source")
CSV_COLUMNS = ("group", "row", "study", "kind", "EV", "EV SD over seeds", "EV 95% low", "EV 95% high", "ceiled EV",
               "ceiled EV SD over seeds", "Corr (mean r)", "Corr SD over seeds", "difference to the row above",
               "difference 95% low", "difference 95% high", "difference excludes 0", "row above", "ensemble gain",
               "gain 95% low", "gain 95% high", "seeds", "source", "trial", "config file")


def pct(value: float | None, sign: bool = False) -> str:
    """A fraction as a percentage with 2 decimals (``+`` with ``sign``); ``–`` for none."""
    if value is None or not math.isfinite(value):
        return "–"
    return f"{100 * value:+.2f}" if sign else f"{100 * value:.2f}"


def interval_text(low: float, high: float) -> str:
    """``[1.23, 4.56]`` in %."""
    return f"[{pct(low)}, {pct(high)}]"


def difference_text(d: Difference | None, prefix: str = "") -> str:
    """``+1.19 [0.21, 2.11] *`` in %: the value, its interval, and the mark of an interval that excludes 0."""
    if d is None:
        return ""
    mark = f" {RESOLVED}" if d.excludes_zero else ""
    return f"{prefix}{pct(d.value, sign=True)} {interval_text(d.low, d.high)}{mark}"


def seeds_text(row: Row) -> str:
    """A model's seed count; an ensemble's count of averaged runs."""
    n = len(row.seeds)
    if row.kind == MODEL:
        return str(n)
    return f"{n} averaged"


def source_text(row: Row) -> str:
    """Where the row came from: ``re-check / trial 3459e899 / runs/.../config.json``."""
    if row.kind == ENSEMBLE:
        return f"{row.source} under {row.config}"
    return " / ".join(p for p in (row.source, f"trial {row.trial_id}" if row.trial_id else "", row.config) if p)


def _corr(row: Row) -> str:
    return f"{row.r:.3f}" if math.isfinite(row.r) else "–"


def scale(val: ValData) -> dict[str, float]:
    """The table's scale: the ideal observers' EVs and the mean noise ceiling (name -> EV)."""
    out = {name: float(ev) for name, ev in (val.references or {}).items() if ev is not None}
    if val.ceiling is not None:
        out["noise ceiling"] = float(np.mean(val.ceiling))
    return out


def body(rows: list[Row], val: ValData | None = None) -> list[list[str]]:
    """The table's cells, one list per row in :data:`HEADER`'s order (the group named on its first row only), then
    the scale's rows."""
    out, group = [], None
    for row in rows:
        delta = difference_text(row.above) if row.kind == MODEL else difference_text(row.gain, "gain ")
        out.append([row.group if row.group != group else "", row.label, row.study, pct(row.ev), pct(row.ev_sd),
                    interval_text(*row.interval), pct(row.ceiled), _corr(row), delta, seeds_text(row),
                    source_text(row)])
        group = row.group
    if val is not None:
        for i, (name, ev) in enumerate(scale(val).items()):
            what = "mean over sites" if name == "noise ceiling" else "labels only"
            out.append([SCALE_GROUP if i == 0 else "", f"{name} ({what})", "", pct(ev), "", "", "", "", "", "", ""])
    return out


def notes(rows: list[Row], val: ValData, floor: float = CEILING_FLOOR) -> list[str]:
    """What the columns are, one sentence each (under the Markdown table, the page's table and the printed one)."""
    n_objects = len(np.unique(np.asarray(val.objects).astype(str)))
    resamples = len(rows[0].samples) if rows else 0
    lines = [
        f"EV: explained variance on the official validation set ({len(val.y)} images of {n_objects} objects, "
        f"{val.y.shape[1]} sites), averaged over sites, in %; a model's EV is the mean over its seeds, SD the SD "
        "over seeds (– for one seed). Corr: the mean Pearson r over sites.",
        f"{100 * LEVEL:g} % interval: the estimate +- 1.96 SD over {resamples} bootstrap resamples of the validation "
        "objects (all images of an object together), the same resamples for every row.",
        f"Δ EV: a model's EV minus that of the model row above it, with the paired interval (the same resampled "
        f"objects for both); {RESOLVED}: the interval excludes 0. An ensemble row averages validation predictions "
        "(a network's seeds; the best study's top configs over their seeds); its Δ is the gain over the mean EV of "
        "its single models, paired.",
    ]
    kept, left = ceiling_counts(val, floor)
    if val.ceiling is not None:
        lines.append(f"Ceiled EV: the mean over sites of EV / noise ceiling (split-half reliability, "
                     f"Spearman-Brown), over the {kept} sites whose ceiling is at least {floor:g}; {left} sites "
                     "left out.")
    else:
        lines.append("Ceiled EV: none, the data has no repetitions to estimate a noise ceiling from.")
    if val.references:
        lines.append("Ideal observers (labels only): each image predicted by its object's or category's mean "
                     "training response; a model of IT should beat them.")
    return lines + study_notes(rows)


def study_notes(rows: list[Row]) -> list[str]:
    """What the rows' studies said when they started, once per study and line (``vgg_depth's search: ImageNet weights
    not in the torch cache for vgg11_bn: ...``)."""
    said = {(r.rung.study, note) for r in rows if r.rung is not None for note in r.rung.notes}
    return [f"{study}'s search: {note}." for study, note in sorted(said)]


def write_markdown(rows: list[Row], val: ValData, path: Path) -> Path:
    """``table.md``: Table 1, its groups, the scale's rows and the notes."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in body(rows, val)]
    lines += [""] + notes(rows, val)
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def _raw(value) -> float | str:
    return "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else value


def csv_rows(rows: list[Row], val: ValData | None = None) -> list[dict]:
    """The table's rows as :data:`CSV_COLUMNS` dicts, raw fractions (the scale's rows: kind ``reference``)."""
    out = []
    for row in rows:
        a, g = row.above, row.gain
        out.append({"group": row.group, "row": row.label, "study": row.study, "kind": row.kind, "EV": row.ev,
                    "EV SD over seeds": _raw(row.ev_sd), "EV 95% low": row.interval[0],
                    "EV 95% high": row.interval[1], "ceiled EV": _raw(row.ceiled),
                    "ceiled EV SD over seeds": _raw(row.ceiled_sd), "Corr (mean r)": row.r,
                    "Corr SD over seeds": _raw(row.r_sd),
                    "difference to the row above": "" if a is None else a.value,
                    "difference 95% low": "" if a is None else a.low,
                    "difference 95% high": "" if a is None else a.high,
                    "difference excludes 0": "" if a is None else a.excludes_zero,
                    "row above": row.above_label, "ensemble gain": "" if g is None else g.value,
                    "gain 95% low": "" if g is None else g.low, "gain 95% high": "" if g is None else g.high,
                    "seeds": " ".join(map(str, row.seeds)), "source": row.source, "trial": row.trial_id,
                    "config file": row.config})
    if val is not None:
        for name, ev in scale(val).items():
            out.append({"group": SCALE_GROUP, "row": name, "kind": REFERENCE, "EV": ev})
    return out


def write_csv(rows: list[Row], val: ValData, path: Path) -> Path:
    """``table.csv``: every column of the table, raw fractions; one row per table row, then the scale's."""
    with Path(path).open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, restval="")
        writer.writeheader()
        writer.writerows(csv_rows(rows, val))
    return Path(path)


def write_tables(rows: list[Row], val: ValData, out: Path) -> tuple[Path, Path]:
    """``table.md`` and ``table.csv`` in the folder ``out``."""
    out = Path(out)
    paths = write_markdown(rows, val, out / TABLE_MD), write_csv(rows, val, out / TABLE_CSV)
    log.info("wrote %s, %s", *paths)
    return paths


LABEL_WIDTH = 44


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def format_table(rows: list[Row], val: ValData | None = None) -> list[str]:
    """Table 1 for the terminal: one line per row under its group, then the scale and the notes' key.

    Parameters
    ----------
    rows : list of Row
    val : ValData, optional
        Adds the scale (ideal observers, noise ceiling) and the ceiled EV's site count.

    Returns
    -------
    list of str
        Lines without newlines, at most about 130 characters wide.
    """
    width = min(LABEL_WIDTH, max((len(r.label) for r in rows), default=10) + 2)
    head = (f"{'':{width}} {'EV %':>7} {'SD':>5} {'95 % interval':>17} {'ceiled':>7} {'Corr':>6}  "
            f"{'Δ EV % (95 % interval)':<31} {'seeds':>10}")
    lines = ["Table 1: validation EV (%) per row, the mean over seeds; interval over resampled objects; Δ: to the "
             f"model row above, paired ({RESOLVED}: excludes 0); an ensemble's Δ: its gain over its single models",
             head]
    group = None
    for row in rows:
        if row.group != group:
            lines.append(row.group)
            group = row.group
        delta = difference_text(row.above) if row.kind == MODEL else difference_text(row.gain, "gain ")
        # A seeds' ensemble sits right under its model: its seed count says which it is.
        label = "  " + (row.label if row.kind == MODEL else
                        f"+ ensemble of {len(row.seeds)} seeds" if row.kind == SEED_ENSEMBLE else f"+ {row.label}")
        lines.append(f"{_fit(label, width):{width}} {pct(row.ev):>7} {pct(row.ev_sd):>5} "
                     f"{interval_text(*row.interval):>17} {pct(row.ceiled):>7} {_corr(row):>6}  {delta:<31} "
                     f"{seeds_text(row):>10}")
    if val is not None:
        shown = scale(val)
        if shown:
            lines.append("for scale: " + ", ".join(f"{name} {pct(ev)}" for name, ev in shown.items()))
        kept, left = ceiling_counts(val)
        if val.ceiling is not None:
            lines.append(f"ceiled EV: mean EV / noise ceiling over the {kept} sites whose ceiling is at least "
                         f"{CEILING_FLOOR:g} ({left} left out)")
    return lines + study_notes(rows)

