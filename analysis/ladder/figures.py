"""The ladder's figures, in the style of :mod:`analysis.style`: Figure 1 (EV per layer), 2A (per site), 2B (RDMs).

Each function draws Table 1's rows (:class:`~analysis.ladder.rows.Row`) with
matplotlib's Agg backend, writes a PNG and returns a :class:`analysis.style.Drawn`.
EV axes are in % and take their limits from the bulk of the rows and the references
(the ideal observers, the mean noise ceiling: labelled lines); a row far outside
(a diverged fit) is drawn at the axis' edge and named in the caption.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.cbook import boxplot_stats  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from scipy.stats import rankdata  # noqa: E402

from analysis.figures import object_rdm  # noqa: E402
from analysis.ladder.rows import MODEL, SEED_ENSEMBLE, Row, best_of_groups  # noqa: E402
from analysis.ladder.rungs import ValData  # noqa: E402
from analysis.ladder.table import scale  # noqa: E402
from analysis.limits import Limits, outside, outside_text, robust_limits  # noqa: E402
from analysis.style import (NOISE_CEILING, Drawn, edge_line, mark_outside, reference_lines, save,  # noqa: E402
                            set_limits)

DPI = 100
LAYERS_PNG = "layers.png"
SITES_PNG = "sites.png"
RDMS_PNG = "rdms.png"
WEIGHTS_COLOURS = {"imagenet": "tab:blue", "random": "tab:orange"}
WEIGHTS_NAMES = {"imagenet": "pretrained (ImageNet)", "random": "random weights"}
GROUP_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                 "tab:olive", "tab:cyan", "tab:gray")
# Horizontal boxes without single sites (their count over ~30 rows would hide the boxes); ticks set once, after.
BOX = {"orientation": "horizontal", "widths": 0.62, "showfliers": False, "manage_ticks": False, "patch_artist": True,
       "medianprops": {"color": "k", "lw": 1.2}}
# Rows of RDM panels at most, the measured one included; beyond it the figure shows the best row of each group.
RDM_PANELS = 8


def _percent(references: dict) -> dict:
    return {name: 100 * value for name, value in references.items()}


def layer_rows(rows: list[Row]) -> list[Row]:
    """The model rows of a layer x weights sweep: their rung's axes hold ``layer`` and ``weights``."""
    return [r for r in rows if r.kind == MODEL and r.rung is not None
            and {"layer", "weights"} <= set(r.rung.axes)]


def plot_layers(rows: list[Row], val: ValData, path: Path, levels: bool = True) -> Drawn | None:
    """Figure 1: EV per layer, one line per weights (pretrained, random), 95 % intervals as bands.

    Parameters
    ----------
    rows : list of Row
        Table 1's rows; those of :func:`layer_rows` are drawn, layers in the order they come.
    val : ValData
        Its ideal observers and mean noise ceiling are the reference lines.
    levels : bool
        Also the best model of each other group (pixels, networks) as a labelled dotted level.

    Returns
    -------
    Drawn, or None when no row has ``layer`` and ``weights`` axes.
    """
    chosen = layer_rows(rows)
    if not chosen:
        return None
    layers = list(dict.fromkeys(str(r.rung.axes["layer"]) for r in chosen))
    weights = list(dict.fromkeys(str(r.rung.axes["weights"]) for r in chosen))
    x = np.arange(len(layers), dtype=float)
    series = {}
    for w in weights:
        at = {str(r.rung.axes["layer"]): r for r in chosen if str(r.rung.axes["weights"]) == w}
        series[w] = np.array([[100 * at[lay].ev, 100 * at[lay].interval[0], 100 * at[lay].interval[1]]
                              if lay in at else [np.nan] * 3 for lay in layers])
    groups = {r.group for r in chosen}
    others = [r for r in best_of_groups(rows) if r.group not in groups] if levels else []
    refs = _percent(scale(val))
    values = np.concatenate([s.ravel() for s in series.values()] + [[100 * r.ev for r in others]])
    limits = robust_limits(values, list(refs.values()))
    fig, ax = plt.subplots(figsize=(10, 5.2))
    out = []
    for i, (w, s) in enumerate(series.items()):
        colour = WEIGHTS_COLOURS.get(w, GROUP_COLOURS[(i + 2) % len(GROUP_COLOURS)])
        ax.fill_between(x, limits.clip(s[:, 1]), limits.clip(s[:, 2]), color=colour, alpha=0.18, lw=0,
                        where=np.isfinite(s[:, 0]))
        edge_line(ax, x, s[:, 0], limits, color=colour, marker="o", lw=1.8, label=WEIGHTS_NAMES.get(w, w))
        mark_outside(ax, x, s[:, 0], limits, color=colour, size=60)
        out += outside([f"{lay}, {w}" for lay in layers], s[:, 0], limits)
    set_limits(ax, limits)
    reference_lines(ax, refs, fmt="{:.1f} %")
    _levels(ax, others, limits)
    out += outside([f"{r.group} ({r.label})" for r in others], [100 * r.ev for r in others], limits)
    ax.set_xticks(x, layers, rotation=30 if max(map(len, layers)) > 6 else 0, ha="right" if max(
        map(len, layers)) > 6 else "center")
    ax.set_xlim(-0.3, len(layers) - 0.7)
    ax.set_xlabel("layer (input to output)")
    ax.set_ylabel("validation EV (%)")
    ax.set_title("EV per layer: pretrained against random weights", fontsize=11)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(color="0.6", alpha=0.35))
    labels.append("95 % interval (objects)")
    ax.legend(handles, labels, frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    read = ("Validation EV of a ridge readout of each layer, pretrained against random weights (the mean over "
            "seeds; bands: 95 % intervals over resampled objects), with the ideal observers (dashed) and the mean "
            "noise ceiling (dash-dotted)" + ("; dotted: the best model of each other group" if others else "")
            + ": where the pretrained curve peaks, and how far above the random one, is the layer answer.")
    return save(fig, path, read, out, limits, what="value", dpi=DPI, unit=" %")


def _levels(ax, rows: list[Row], limits: Limits) -> None:
    """The best model of other groups as dotted levels, labelled at the left end, a label moved along when it would
    overlap the one below."""
    last, turn, span = None, 0, limits.high - limits.low
    for row in sorted(rows, key=lambda r: r.ev):
        v = 100 * row.ev
        if not limits.contains(v):
            continue
        ax.axhline(v, color="0.35", ls=":", lw=1.1, zorder=1.4)
        turn = turn + 1 if last is not None and abs(v - last) < 0.05 * span else 0
        last = v
        ax.text(0.01 + 0.3 * (turn % 3), v, f"{row.group}: {row.label} {v:.1f} %", fontsize=7, color="0.25",
                va="bottom", ha="left", transform=ax.get_yaxis_transform(), zorder=6,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 0.5})


def _colours(rows: list[Row]) -> list[str]:
    groups = list(dict.fromkeys(r.group for r in rows))
    return [GROUP_COLOURS[groups.index(r.group) % len(GROUP_COLOURS)] for r in rows]


def _row_label(row: Row, width: int = 42) -> str:
    """A row's label on a figure's axis: a seeds' ensemble, right under its model, by its seed count alone."""
    if row.kind == SEED_ENSEMBLE:
        label = f"+ ensemble of {len(row.seeds)} seeds"
    else:
        label = row.label if row.kind == MODEL else f"+ {row.label}"
    return label if len(label) <= width else label[:width - 1] + "…"


def plot_sites(rows: list[Row], val: ValData, path: Path) -> Drawn:
    """Figure 2A: per-site Pearson r and EV of every row, one box per row (in the table's order), coloured by group.

    Boxes span the quartiles over sites, whiskers 1.5 times the interquartile range (single sites beyond are not
    drawn). The noise ceiling per site closes each panel as a grey box (its square root for r); the EV panel has the
    ideal observers and the mean noise ceiling as lines. Each axis spans the bulk of the boxes and references; a row
    whose median lies beyond is drawn as a triangle at the edge and named.

    Parameters
    ----------
    rows : list of Row
    val : ValData
    """
    n = len(rows)
    colours = _colours(rows)
    ys = np.arange(n)[::-1].astype(float)
    ceiling = None if val.ceiling is None else np.asarray(val.ceiling, dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(12, max(4.0, 0.25 * (n + 1) + 1.8)), sharey=True)
    out, notes = [], []
    panels = (("Pearson r per site", [r.r_per_site for r in rows], None if ceiling is None else np.sqrt(ceiling),
               {}),
              ("EV per site (%)", [100 * r.ev_per_site for r in rows], None if ceiling is None else 100 * ceiling,
               _percent(scale(val))))
    for ax, (label, data, ceil, refs) in zip(axes, panels):
        stats = boxplot_stats(data + ([ceil] if ceil is not None else []))
        ends = [[s["whislo"], s["q1"], s["med"], s["q3"], s["whishi"]] for s in stats]
        # The ceiling's box is a reference, always on the axis; the rows' boxes make the bulk.
        limits = robust_limits(np.ravel(ends[:n]), list(refs.values()) + (ends[n] if ceil is not None else []))
        boxes = ax.bxp(stats[:n], positions=ys, **BOX)
        for patch, colour, row in zip(boxes["boxes"], colours, rows):
            patch.set_facecolor(colour)
            patch.set_alpha(0.55 if row.kind == MODEL else 0.3)
        if ceil is not None:
            box = ax.bxp(stats[n:], positions=[-1.0], **BOX)
            box["boxes"][0].set_facecolor("0.8")
        medians = np.array([s["med"] for s in stats[:n]])
        mark_outside(ax, ys, medians, limits, axis="x", color=[c for c in colours], size=50)
        set_limits(ax, limits, "x")
        reference_lines(ax, refs, axis="x", fmt="{:.1f} %")
        ax.set_xlabel(label)
        ax.grid(axis="x", color="0.9", lw=0.6)
        ax.set_axisbelow(True)
        mine = outside([r.label for r in rows], medians, limits)
        out += mine
        if mine:
            notes.append(f"{label}: " + outside_text(mine, limits, "row median", " %" if refs else ""))
    ticks = list(ys) + ([-1.0] if ceiling is not None else [])
    names = [_row_label(r) for r in rows] + ([f"{NOISE_CEILING} (√ for r)"] if ceiling is not None else [])
    axes[0].set_yticks(ticks, names, fontsize=7.5)
    axes[0].set_ylim(min(ticks) - 0.7, n - 0.3)
    groups = list(dict.fromkeys(r.group for r in rows))
    for ax in axes:  # a thin line between groups
        for i in range(1, n):
            if rows[i].group != rows[i - 1].group:
                ax.axhline(ys[i] + 0.5, color="0.6", lw=0.6, zorder=0.5)
        if ceiling is not None:
            ax.axhline(-0.5, color="0.6", lw=0.6, zorder=0.5)
    handles = [Patch(facecolor=GROUP_COLOURS[i % len(GROUP_COLOURS)], alpha=0.55, label=g) for i, g in
               enumerate(groups)]
    axes[0].legend(handles=handles, loc="best", frameon=True, framealpha=0.9, fontsize=8, title="group",
                   title_fontsize=8)
    read = ("Per-site Pearson r (left) and EV (right) of every row over the validation sites, in the table's order "
            "(ensembles marked +): boxes span the quartiles, whiskers 1.5 IQR, coloured by group; the grey box is "
            "the noise ceiling per site; dashed: ideal observers, dash-dotted: the mean noise ceiling.")
    return save(fig, path, read, out, note=" ".join(notes), dpi=DPI, what="row median")


def rdm_agreement(measured: np.ndarray, predicted: np.ndarray) -> float:
    """Spearman correlation of two RDMs' upper triangles (NaN for a constant RDM).

    Parameters
    ----------
    measured, predicted : array, shape (n_objects, n_objects)
    """
    iu = np.triu_indices(len(measured), 1)
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant RDM (one pattern for every object): NaN
        return float(np.corrcoef(rankdata(measured[iu]), rankdata(predicted[iu]))[0, 1])


def rdm_rows(rows: list[Row], panels: int = RDM_PANELS) -> list[Row]:
    """The rows whose RDM is drawn: every model row when they fit in ``panels - 1``, else the best of each group."""
    models = [r for r in rows if r.kind == MODEL]
    return models if len(models) <= panels - 1 else best_of_groups(rows)


def plot_rdms(rows: list[Row], val: ValData, path: Path, panels: int = RDM_PANELS) -> Drawn:
    """Figure 2B: the measured object RDM and each shown row's predicted one, with their Spearman agreement.

    Parameters
    ----------
    rows : list of Row
        Drawn: :func:`rdm_rows` of them. A row's panel is its first seed's RDM; its agreement is the mean over its
        seeds.
    val : ValData
    panels : int
        At most this many panels (the measured one included).
    """
    shown = rdm_rows(rows, panels)
    measured, names = object_rdm(np.asarray(val.y, dtype=float), np.asarray(val.objects).astype(str))
    total = 1 + len(shown)
    ncols = min(4, math.ceil(total / math.ceil(total / 4)))
    nrows = math.ceil(total / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.0 * ncols + 1.0, 3.25 * nrows), layout="constrained",
                             squeeze=False)
    categories = [n.rsplit("_", 1)[0] for n in names]
    edges = [i for i in range(1, len(names)) if categories[i] != categories[i - 1]]
    for k, ax in enumerate(axes.ravel()):
        if k >= total:
            ax.axis("off")
            continue
        if k == 0:
            rdm, title = measured, "measured"
        else:
            row = shown[k - 1]
            rdms = [object_rdm(np.asarray(p, dtype=float), np.asarray(val.objects).astype(str))[0]
                    for p in row.predictions]
            rho = float(np.nanmean([rdm_agreement(measured, r) for r in rdms])) if rdms else math.nan
            rdm = rdms[0]
            seeds = f", mean of {len(rdms)} seeds" if len(rdms) > 1 else ""
            title = "\n".join(textwrap.wrap(f"{row.group}: {row.label}", 34)[:2]) + f"\nρ = {rho:.2f}{seeds}"
        im = ax.imshow(rdm, cmap="jet", vmin=0, vmax=100)
        ax.set_title(title, fontsize=8)
        for e in edges:
            ax.axhline(e - 0.5, color="w", lw=0.5)
            ax.axvline(e - 0.5, color="w", lw=0.5)
        ticks = [0] + edges
        if k == 0:
            ax.set_xticks(ticks, [categories[t] for t in ticks], rotation=90, fontsize=6)
            ax.set_yticks(ticks, [categories[t] for t in ticks], fontsize=6)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label="dissimilarity (percentile)")
    fig.savefig(path, dpi=DPI)  # constrained layout: the colour bar spans every panel
    plt.close(fig)
    which = "every model row" if len(shown) == len([r for r in rows if r.kind == MODEL]) else \
        "the best model of each group"
    return Drawn(fig, Path(path), "Object-level dissimilarities (1 - Pearson r between object-mean patterns, as "
                 f"percentiles), measured (top left) and predicted by {which}; ρ: Spearman agreement with the "
                 "measured RDM (each panel shows a model's first seed, ρ is the mean over its seeds): the closer to "
                 "the measured pattern of categories, the more IT-like the model's object geometry.", [])
