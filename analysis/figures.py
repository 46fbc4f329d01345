"""Figures of one trained model, as in the report's Figure 2 and 3.

Each function takes arrays and a path, draws with matplotlib's Agg backend in the
style of :mod:`analysis.style` (limits from the bulk of the values and the
references, values outside drawn at the edge and named), writes a PNG and returns
a :class:`analysis.style.Drawn` (the figure, the path, a caption). ``references``
(name -> EV: the ideal observers, scored as the figure's EV is) are drawn as
labelled lines on the EV axis, with the noise ceiling where the data has one.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import rankdata  # noqa: E402

from analysis.limits import outside, outside_text, robust_limits  # noqa: E402
from analysis.style import (EDGE_NOTE, NOISE_CEILING, Drawn, count_outside, edge_line, integer_ticks,  # noqa: E402
                            mark_outside, reference_lines, save, set_limits)

DPI = 110


def plot_site_distributions(r: np.ndarray, ev: np.ndarray, path: Path, ceiling: np.ndarray | None = None,
                            references: dict | None = None) -> Drawn:
    """Histograms and box plots of per-site Pearson r and EV.

    Parameters
    ----------
    r, ev : array, shape (n_sites,)
    ceiling : array, shape (n_sites,), optional
        EV noise ceiling per site, drawn as a reference distribution; its mean as a labelled line.
    references : dict, optional
        Name -> site-averaged EV on the same images (the ideal observers): labelled lines on the EV axis.
    """
    r, ev = np.asarray(r, dtype=float), np.asarray(ev, dtype=float)
    lines = dict(references or {})
    if ceiling is not None:
        lines[NOISE_CEILING] = float(np.mean(ceiling))
    fig, axes = plt.subplots(2, 2, figsize=(10, 5.2), gridspec_kw={"height_ratios": [3, 1]}, sharex="col")
    out, notes = [], []
    sites = [f"site {i}" for i in range(len(ev))]
    for col, (values, label) in enumerate(((r, "Pearson r"), (ev, "explained variance"))):
        is_ev = label == "explained variance"
        shown = np.r_[values, ceiling] if is_ev and ceiling is not None else values
        limits = robust_limits(shown, list(lines.values()) if is_ev else [])
        bins = np.linspace(limits.low, limits.high, 41)
        ax = axes[0, col]
        ax.hist(values[(values >= limits.low) & (values <= limits.high)], bins=bins, color="tab:blue", alpha=0.8,
                label="model")
        if ceiling is not None and is_ev:
            ax.hist(ceiling, bins=bins, color="tab:gray", alpha=0.4, label="noise ceiling per site")
        count_outside(ax, values, limits, color="tab:blue")
        mean = float(np.mean(values))
        if limits.contains(mean):
            ax.axvline(mean, color="k", lw=1.2, label="model mean")
        set_limits(ax, limits, "x")
        if is_ev:
            reference_lines(ax, lines, axis="x")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # headroom for the reference lines' labels
        ax.legend(frameon=False, fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3,
                  borderaxespad=0.2)  # above the axes: no bar or reference label under it
        ax.set_ylabel("sites")
        ax.set_title(f"{label}: mean {mean:.3f}, median {np.median(values):.3f}", fontsize=10, pad=22)
        axes[1, col].boxplot(values, orientation="horizontal", widths=0.6)
        axes[1, col].set_yticks([])
        axes[1, col].set_xlabel(label)
        set_limits(axes[1, col], limits, "x")
        mine = outside(sites, values, limits)
        out += mine
        if mine:
            notes.append(f"{label}: " + outside_text(mine, limits, "site"))
    read = ("Per-site Pearson r and EV of the model on the official validation set (blue), the noise ceiling's "
            "per-site EV (grey); the model's mean (black) against the object and category ideal observers (dashed) "
            "and the mean noise ceiling (dash-dotted): a model of IT should lie right of the ideal observers.")
    return save(fig, path, read, out, note=" ".join(notes), dpi=DPI)


def object_rdm(responses: np.ndarray, objects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object-level representational dissimilarity matrix, rank-normalised to percentiles.

    Parameters
    ----------
    responses : array, shape (n_images, n_sites)
    objects : array of str, shape (n_images,)

    Returns
    -------
    rdm : array, shape (n_objects, n_objects)
        ``1 - corr`` between object-mean response patterns, as percentiles 0..100
        of the off-diagonal entries.
    names : array of str, shape (n_objects,)
        Sorted object names (objects of a category sit together).
    """
    names = np.unique(objects)
    means = np.stack([responses[objects == n].mean(axis=0) for n in names])
    rdm = 1.0 - np.corrcoef(means)
    off = ~np.eye(len(names), dtype=bool)
    ranked = np.zeros_like(rdm)
    ranked[off] = 100.0 * (rankdata(rdm[off]) - 1) / max(off.sum() - 1, 1)
    return ranked, names


def plot_rdms(measured: np.ndarray, predicted: np.ndarray, objects: np.ndarray, path: Path) -> Drawn:
    """Measured vs. predicted object-level RDMs side by side, with their Spearman agreement.

    Parameters
    ----------
    measured, predicted : array, shape (n_images, n_sites)
    objects : array of str, shape (n_images,)
    """
    rdm_m, names = object_rdm(measured, objects)
    rdm_p, _ = object_rdm(predicted, objects)
    iu = np.triu_indices(len(names), 1)
    # NaN, quietly, for a model that predicts one pattern for every object (a mean model): its RDM is constant.
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.corrcoef(rankdata(rdm_m[iu]), rankdata(rdm_p[iu]))[0, 1]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8))
    for ax, rdm, title in ((axes[0], rdm_m, "measured"), (axes[1], rdm_p, "predicted")):
        im = ax.imshow(rdm, cmap="jet", vmin=0, vmax=100)
        ax.set_title(f"{title} (object RDM, percentile)")
        categories = [n.rsplit("_", 1)[0] for n in names]
        edges = [i for i in range(1, len(names)) if categories[i] != categories[i - 1]]
        for e in edges:
            ax.axhline(e - 0.5, color="w", lw=0.6)
            ax.axvline(e - 0.5, color="w", lw=0.6)
        ticks = [0] + edges
        ax.set_xticks(ticks, [categories[t] for t in ticks], rotation=90, fontsize=7)
        ax.set_yticks(ticks, [categories[t] for t in ticks], fontsize=7)
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.suptitle(f"RDM agreement (Spearman): {rho:.3f}")
    fig.savefig(path, dpi=DPI)  # no tight_layout: the colour bar spans both axes
    plt.close(fig)
    return Drawn(fig, Path(path), "Object-level dissimilarities, measured (left) and predicted (right), as "
                 f"percentiles: the closer the two patterns, the higher their Spearman agreement ({rho:.3f}).")


def plot_site_responses(measured: np.ndarray, predicted: np.ndarray, objects: np.ndarray, ev: np.ndarray,
                        path: Path) -> Drawn:
    """Measured and predicted responses of three sites (best, median, worst EV), images sorted by object.

    Each panel's y axis spans that site's measured responses and the bulk of its predicted ones: a wild prediction
    is drawn at the edge and counted.

    Parameters
    ----------
    measured, predicted : array, shape (n_images, n_sites)
    objects : array of str, shape (n_images,)
    ev : array, shape (n_sites,)
    """
    order = np.argsort(objects, kind="stable")
    ranked = np.argsort(ev)
    sites = [ranked[-1], ranked[len(ranked) // 2], ranked[0]]
    fig, axes = plt.subplots(len(sites), 1, figsize=(11, 7.4), sharex=True)
    categories = np.array([o.rsplit("_", 1)[0] for o in objects[order]])
    bounds = np.flatnonzero(categories[1:] != categories[:-1]) + 1
    images = np.arange(len(order))
    out = []
    for ax, site, label in zip(axes, sites, ("best", "median", "worst")):
        m, p = measured[order, site], predicted[order, site]
        limits = robust_limits(p, references=m)  # the recordings are shown whole; a wild prediction is not
        ax.plot(images, m, color="k", lw=0.8, label="measured")
        edge_line(ax, images, p, limits, color="tab:red", lw=0.8, label="predicted")
        mark_outside(ax, images, p, limits, color="tab:red", size=20)
        for b in bounds:
            ax.axvline(b, color="tab:gray", lw=0.5, ls=":")
        set_limits(ax, limits)
        ax.set_ylabel("rate")
        ax.set_title(f"site {site} ({label} EV {ev[site]:.2f})", fontsize=9)
        out += outside([f"site {site}"] * len(p), p, limits)
    axes[0].legend(frameon=False, ncol=2, fontsize=8)
    starts = np.r_[0, bounds]
    axes[-1].set_xticks(starts, categories[starts], rotation=45, fontsize=7)
    axes[-1].set_xlabel("validation images, grouped by category")
    read = ("Measured (black) and predicted (red) responses of the best, median and worst predicted sites over the "
            "validation images: a good site's red line follows the black one within and across categories.")
    return save(fig, path, read, out, note=outside_text(out, None, "prediction"), dpi=DPI)


def plot_learning_curve(epochs: list[dict], best_epoch: int, path: Path, references: dict | None = None) -> Drawn:
    """Training loss and inner-validation EV per epoch, best epoch marked.

    Parameters
    ----------
    epochs : list of dict
        One per epoch: ``epoch``, ``train_loss``, ``inner_ev``.
    references : dict, optional
        Name -> EV on the same inner split (the ideal observers): labelled lines on the EV axis.
    """
    e = np.array([r["epoch"] for r in epochs], dtype=float)
    loss = np.array([np.nan if r.get("train_loss") is None else r["train_loss"] for r in epochs], dtype=float)
    inner = np.array([np.nan if r.get("inner_ev") is None else r["inner_ev"] for r in epochs], dtype=float)
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    loss_limits = robust_limits(loss)
    edge_line(ax, e, loss, loss_limits, color="tab:blue", label="train loss (z-scored MSE)")
    mark_outside(ax, e, loss, loss_limits, color="tab:blue")
    set_limits(ax, loss_limits)
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    integer_ticks(ax)
    ax2 = ax.twinx()
    ev_limits = robust_limits(inner, list((references or {}).values()))
    edge_line(ax2, e, inner, ev_limits, color="tab:red", label="inner-val EV")
    mark_outside(ax2, e, inner, ev_limits, color="tab:red")
    ax2.axvline(best_epoch, color="tab:red", ls=":", lw=1)
    set_limits(ax2, ev_limits)
    reference_lines(ax2, references)
    ax2.set_ylabel("inner-validation EV", color="tab:red")
    out = (outside(["train loss"] * len(e), loss, loss_limits, [f"epoch {int(x)}" for x in e])
           + outside(["inner EV"] * len(e), inner, ev_limits, [f"epoch {int(x)}" for x in e]))
    if out:
        ax2.scatter([], [], marker="v", color="0.6", edgecolors="k", linewidths=0.6, label=EDGE_NOTE)
        ax2.legend(frameon=False, fontsize=8, loc="lower right")
    read = (f"Training loss (blue) and inner-validation EV (red) per epoch; the dotted line marks the best epoch "
            f"({best_epoch}), whose weights are kept.")
    return save(fig, path, read, out, note=outside_text(out, None), dpi=DPI)
