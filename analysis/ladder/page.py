"""The ladder's page: ``index.html`` in the output folder, beside its figures.

Self-contained as :mod:`analysis.report`'s page (one HTML file, its PNGs beside it,
nothing fetched): the answer first (the best model, how far ahead of the next, the
ensembles' gain, the scale of the ideal observers and the noise ceiling), Table 1,
the report's ordering step by step (:mod:`analysis.ladder.steps`), the figures each in a ``<figure>`` with a one-line ``<figcaption>``, the best model's
single sites by category (Figure 3, as its final training drew it), and its best
and worst sites. Readable at 1280 px: images scale to the text column, the table's
long cells wrap.
"""

from __future__ import annotations

import html
import logging
import math
import shutil
from pathlib import Path

from analysis.ladder.rows import ENSEMBLE, MODEL, SEED_ENSEMBLE, Row, best_row, common_folder, compare_rows
from analysis.ladder.rungs import ValData
from analysis.ladder.sites import extreme_sites
from analysis.ladder.steps import HOLDS, Step, step_lines
from analysis.ladder.table import RESOLVED, difference_text, interval_text, notes, pct, scale, seeds_text, source_text
from analysis.page_style import PAGE_STYLE
from analysis.style import Drawn
from trainables.core.layout import SITE_RESPONSES_FILE

log = logging.getLogger(__name__)

INDEX = "index.html"
# The figure a final training draws of single sites by category (trainables.train), copied beside the page.
SITE_RESPONSES = SITE_RESPONSES_FILE
FIGURE_TITLES = {"layers.png": "Figure 1: EV per layer, pretrained against random weights",
                 "sites.png": "Figure 2A: per-site r and EV across the ladder",
                 "rdms.png": "Figure 2B: object RDMs, measured and predicted",
                 SITE_RESPONSES: "Figure 3: single sites by category, the best model"}
# The project's page style, with the ladder table's: numbers right-aligned and unbroken, the source column small and
# broken anywhere (a long path).
STYLE = PAGE_STYLE + (
    "table.ladder{font-size:0.84em;width:100%;table-layout:auto}"
    "table.ladder td.num{text-align:right;white-space:nowrap}"
    "table.ladder tr.group th{background:#eef2f7;text-align:left}"
    "table.ladder tr.ensemble td.label{font-style:italic}"
    "table.ladder tr.best td{font-weight:bold}"
    "table.ladder td.source{font-size:0.85em;color:#555;overflow-wrap:anywhere;min-width:12em}"
    "table.sites{font-size:0.9em}table.sites td.num{text-align:right}"
    ".answer{font-size:1.08em}.notes{font-size:0.88em;color:#333}")


def _esc(text) -> str:
    return html.escape(str(text))


def answer(rows: list[Row], val: ValData) -> list[str]:
    """The answer in a few sentences: the best model, its lead over the next best (paired), the best ensemble's gain,
    and the scale."""
    best = best_row(rows)
    if best is None:
        return ["No model row: the ladder has no answer yet."]
    lines = [f"Best model: <b>{_esc(best.label)}</b> ({_esc(best.group)}, study {_esc(best.study)}): validation EV "
             f"<b>{pct(best.ev)} %</b> {interval_text(*best.interval)} (95 % interval over objects), ceiled EV "
             f"{pct(best.ceiled)} %, Corr {best.r:.3f}, {len(best.seeds)} seed{'s' if len(best.seeds) > 1 else ''}."]
    others = [r for r in rows if r.kind == MODEL and r is not best and math.isfinite(r.ev)]
    if others:
        second = max(others, key=lambda r: r.ev)
        d = compare_rows(best, second)
        verdict = ("the interval excludes 0: these validation images resolve the lead" if d.excludes_zero else
                   "the interval includes 0: these validation images do not resolve the lead")
        lines.append(f"Ahead of the next best model, {_esc(second.label)} ({_esc(second.group)}), by "
                     f"{pct(d.value)} percentage points {interval_text(d.low, d.high)} (paired): {verdict}.")
    ensembles = [r for r in rows if r.kind in (SEED_ENSEMBLE, ENSEMBLE) and r.gain is not None]
    if ensembles:
        top = max(ensembles, key=lambda r: r.ev)
        lines.append(f"Best ensemble: {_esc(top.label)} ({_esc(top.study)}), EV {pct(top.ev)} % "
                     f"{interval_text(*top.interval)}, {difference_text(top.gain, 'gain ').rstrip(' ' + RESOLVED)} "
                     "percentage points over the mean of its single models.")
    shown = scale(val)
    if shown:
        parts = [f"{_esc(name)} {pct(ev)} %" for name, ev in shown.items()]
        lines.append("For scale: " + ", ".join(parts) + " (ideal observers: labels only; noise ceiling: the mean "
                     "split-half EV over sites). A model of IT must beat the ideal observers; the ceiling is what the "
                     "data's noise allows.")
    return lines


HEADER = ("row", "study", "EV (%)", "SD", "95 % interval", "ceiled EV (%)", "Corr", "Δ EV (95 % interval)", "seeds",
          "source")


def _source(row: Row, base: Path | None) -> str:
    """The source cell: the config file below ``base`` (its full path on hover)."""
    text = source_text(row)
    if base is not None and row.config:
        short = str(Path(row.config).relative_to(base)) if Path(row.config).is_relative_to(base) else row.config
        text = text.replace(row.config, short)
    return f"<td class='source' title='{_esc(row.config)}'>{_esc(text)}</td>"


def _against(row: Row) -> str:
    """What a row's Δ compares it with (shown on hover)."""
    if row.kind != MODEL:
        return "the mean EV of its single models"
    return f"{row.label} minus {row.above_label}" if row.above_label else ""


def table_html(rows: list[Row], val: ValData) -> str:
    """Table 1 as HTML: a heading row per group, the best model in bold, ensembles in italics, then the scale;
    config files named below their common folder."""
    best = best_row(rows)
    base = common_folder([Path(r.config).parent for r in rows if r.config])
    head = "".join(f"<th>{_esc(h)}</th>" for h in HEADER)
    parts, group = [f"<table class='ladder'><tr>{head}</tr>"], None
    for row in rows:
        if row.group != group:
            parts.append(f"<tr class='group'><th colspan='{len(HEADER)}'>{_esc(row.group)}</th></tr>")
            group = row.group
        delta = difference_text(row.above) if row.kind == MODEL else difference_text(row.gain, "gain ")
        if delta.endswith(RESOLVED):
            delta = f"<b>{_esc(delta)}</b>"
        else:
            delta = _esc(delta)
        css = "best" if row is best else ("ensemble" if row.kind != MODEL else "")
        label = row.label if row.kind == MODEL else f"+ {row.label}"
        cells = [f"<td class='label'>{_esc(label)}</td>", f"<td>{_esc(row.study)}</td>",
                 f"<td class='num'>{pct(row.ev)}</td>", f"<td class='num'>{pct(row.ev_sd)}</td>",
                 f"<td class='num'>{_esc(interval_text(*row.interval))}</td>",
                 f"<td class='num'>{pct(row.ceiled)}</td>",
                 f"<td class='num'>{row.r:.3f}</td>",
                 f"<td class='num' title='{_esc(_against(row))}'>{delta}</td>",
                 f"<td class='num'>{_esc(seeds_text(row))}</td>", _source(row, base)]
        parts.append(f"<tr class='{css}'>" + "".join(cells) + "</tr>")
    shown = scale(val)
    if shown:
        parts.append(f"<tr class='group'><th colspan='{len(HEADER)}'>for scale</th></tr>")
        for name, ev in shown.items():
            what = "mean over sites" if name == "noise ceiling" else "labels only"
            parts.append(f"<tr><td class='label'>{_esc(name)} ({what})</td><td></td><td class='num'>{pct(ev)}</td>"
                         + "<td></td>" * (len(HEADER) - 3) + "</tr>")
    parts.append("</table>")
    if base is not None:
        parts.append(f"<p class='notes'>Config files (source) below {_esc(base)}.</p>")
    return "".join(parts)


def _figure(drawn: Drawn, title: str | None = None) -> str:
    title = title or FIGURE_TITLES.get(drawn.path.name, drawn.path.stem)
    return (f"<h2>{_esc(title)}</h2><figure><img src='{_esc(drawn.path.name)}' alt='{_esc(title)}'>"
            f"<figcaption>{_esc(drawn.caption)}</figcaption></figure>")


def copy_site_responses(row: Row, out: Path) -> Drawn | None:
    """Figure 3 of ``row``: its first run's ``site_responses.png`` (drawn by its final training), copied into ``out``;
    None when the run has none."""
    for run in row.runs:
        source = Path(run.folder) / SITE_RESPONSES
        if source.is_file():
            target = Path(out) / SITE_RESPONSES
            shutil.copyfile(source, target)
            caption = (f"Measured (black) and predicted (red) responses of {row.label}'s best, median and worst sites "
                       f"over the validation images, grouped by category (seed {run.seed}, as its final training "
                       "drew it): a good site's red line follows the black one within and across categories.")
            return Drawn(None, target, caption, [])
    return None


def sites_html(row: Row, val: ValData, n: int = 5) -> str:
    """The best model's ``n`` best and ``n`` worst sites: EV, r, ceiling and EV / ceiling."""
    best, worst = extreme_sites(row, val, n)
    head = "".join(f"<th>{h}</th>" for h in ("", "site", "EV (%)", "r", "noise ceiling EV (%)", "EV / ceiling"))

    def line(kind: str, s) -> str:
        ceiled = "–" if not math.isfinite(s.ceiled) else f"{s.ceiled:.2f}"
        return (f"<tr><td>{kind}</td><td class='num'>{s.site}</td><td class='num'>{pct(s.ev)}</td>"
                f"<td class='num'>{s.r:.3f}</td><td class='num'>{pct(s.ceiling)}</td><td class='num'>{ceiled}</td>"
                "</tr>")

    body = "".join(line("best" if i == 0 else "", s) for i, s in enumerate(best))
    body += "".join(line("worst" if i == 0 else "", s) for i, s in enumerate(worst))
    return (f"<h2>Per site: {_esc(row.label)}'s {n} best and {n} worst sites</h2><table class='sites'>"
            f"<tr>{head}</tr>{body}</table><p class='notes'>EV and r: the mean over its seeds; EV / ceiling only where "
            "the ceiling reaches the ceiled EV's floor. Every site of every row: sites.csv.</p>")


def steps_html(steps: list[Step]) -> str:
    """The report's ordering, a line per step (its verdict in bold where the step holds)."""
    if not steps:
        return ""
    items = "".join(f"<li>{_esc(line)}</li>" if step.verdict != HOLDS else
                    f"<li>{_esc(line.rsplit(', ', 1)[0])}, <b>{HOLDS}</b></li>"
                    for step, line in zip(steps, step_lines(steps)))
    return ("<h2>The report's ordering</h2><p class='notes'>Each level is the best model row of its kind; each step is "
            "the upper level's EV minus the lower's in percentage points, with the paired 95 % interval over the "
            "same resampled objects: <i>holds</i> where the interval lies above 0, <i>reversed</i> where it lies "
            f"below, <i>not resolved</i> where it includes 0.</p><ul>{items}</ul>")


def write_page(rows: list[Row], figures: list[Drawn], val: ValData, out: Path, steps: list[Step] = (),
               title: str = "The ladder: which model explains IT best") -> Path:
    """Write ``index.html`` into ``out`` (the figures' folder) and copy the best model's Figure 3 beside it.

    Parameters
    ----------
    rows : list of Row
        Table 1's rows (:func:`analysis.ladder.rows.build_rows`).
    figures : list of Drawn
        The figures, in the page's order (None entries are skipped: a ladder without a layer sweep has no
        Figure 1); each PNG must lie in ``out``.
    val : ValData
    out : Path
        The output folder.
    steps : list of Step
        The report's ordering (:func:`analysis.ladder.steps.ladder_steps`), shown under Table 1.

    Returns
    -------
    Path
        The page.
    """
    out = Path(out)
    parts = [f"<h1>{_esc(title)}</h1>", "<div class='answer'>" + "".join(f"<p>{s}</p>" for s in answer(rows, val))
             + "</div>", "<h2>Table 1</h2>", table_html(rows, val),
             "<div class='notes'>" + "".join(f"<p>{_esc(s)}</p>" for s in notes(rows, val)) + "</div>",
             steps_html(list(steps))]
    shown = [d for d in figures if d is not None]
    best = best_row(rows)
    if best is not None:
        responses = copy_site_responses(best, out)
        if responses is not None:
            shown.append(responses)
    parts += [_figure(d) for d in shown]
    if best is not None:
        parts.append(sites_html(best, val))
    page = (f"<!doctype html><html><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n")
    index = out / INDEX
    index.write_text(page)
    log.info("wrote %s", index)
    return index
