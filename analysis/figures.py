"""Figures of one trained model, as in the report's Figure 2 and 3.

Each function takes arrays and a path, draws with matplotlib's Agg backend and
writes a PNG.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import rankdata  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_site_distributions(r: np.ndarray, ev: np.ndarray, path: Path, ceiling: np.ndarray | None = None) -> Path:
    """Histograms and box plots of per-site Pearson r and EV.

    Parameters
    ----------
    r, ev : array, shape (n_sites,)
    ceiling : array, shape (n_sites,), optional
        EV noise ceiling per site, drawn as a reference distribution.
    """
    fig, axes = plt.subplots(2, 2, figsize=(9, 5), gridspec_kw={"height_ratios": [3, 1]}, sharex="col")
    for col, (values, label) in enumerate(((r, "Pearson r"), (ev, "explained variance"))):
        ax = axes[0, col]
        ax.hist(values, bins=30, color="tab:blue", alpha=0.8, label="model")
        if ceiling is not None and label == "explained variance":
            ax.hist(ceiling, bins=30, color="tab:gray", alpha=0.4, label="noise ceiling")
            ax.legend(frameon=False)
        ax.axvline(np.mean(values), color="k", lw=1)
        ax.set_ylabel("sites")
        ax.set_title(f"{label}: mean {np.mean(values):.3f}, median {np.median(values):.3f}")
        axes[1, col].boxplot(values, orientation="horizontal", widths=0.6)
        axes[1, col].set_yticks([])
        axes[1, col].set_xlabel(label)
    return _save(fig, path)


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


def plot_rdms(measured: np.ndarray, predicted: np.ndarray, objects: np.ndarray, path: Path) -> Path:
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_site_responses(measured: np.ndarray, predicted: np.ndarray, objects: np.ndarray, ev: np.ndarray,
                        path: Path) -> Path:
    """Measured and predicted responses of three sites (best, median, worst EV), images sorted by object.

    Parameters
    ----------
    measured, predicted : array, shape (n_images, n_sites)
    objects : array of str, shape (n_images,)
    ev : array, shape (n_sites,)
    """
    order = np.argsort(objects, kind="stable")
    ranked = np.argsort(ev)
    sites = [ranked[-1], ranked[len(ranked) // 2], ranked[0]]
    fig, axes = plt.subplots(len(sites), 1, figsize=(11, 7), sharex=True)
    categories = np.array([o.rsplit("_", 1)[0] for o in objects[order]])
    bounds = np.flatnonzero(categories[1:] != categories[:-1]) + 1
    for ax, site, label in zip(axes, sites, ("best", "median", "worst")):
        ax.plot(measured[order, site], color="k", lw=0.8, label="measured")
        ax.plot(predicted[order, site], color="tab:red", lw=0.8, label="predicted")
        for b in bounds:
            ax.axvline(b, color="tab:gray", lw=0.5, ls=":")
        ax.set_ylabel("rate")
        ax.set_title(f"site {site} ({label} EV {ev[site]:.2f})", fontsize=9)
    axes[0].legend(frameon=False, ncol=2, fontsize=8)
    starts = np.r_[0, bounds]
    axes[-1].set_xticks(starts, categories[starts], rotation=45, fontsize=7)
    axes[-1].set_xlabel("validation images, grouped by category")
    return _save(fig, path)


def plot_learning_curve(epochs: list[dict], best_epoch: int, path: Path) -> Path:
    """Training loss and inner-validation EV per epoch, best epoch marked."""
    e = [r["epoch"] for r in epochs]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(e, [r["train_loss"] for r in epochs], color="tab:blue", label="train loss (z-scored MSE)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(e, [r["inner_ev"] for r in epochs], color="tab:red", label="inner-val EV")
    ax2.axvline(best_epoch, color="tab:red", ls=":", lw=1)
    ax2.set_ylabel("inner-validation EV", color="tab:red")
    return _save(fig, path)
