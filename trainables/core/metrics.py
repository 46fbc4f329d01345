"""Scores of predicted vs. measured neural responses.

Pure numpy. Arrays are ``(n_images, n_sites)`` unless stated otherwise; every
score is computed per site (column) and then averaged, never on the flattened
matrix (that would mix between-site and between-image variance).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "explained_variance_per_site",
    "explained_variance",
    "ObjectSums",
    "object_sums",
    "explained_variance_of_objects",
    "pearson_per_site",
    "r2_per_site",
    "split_half_reliability",
    "summarize",
]


def _check_pair(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.ndim == 1:
        y_true = y_true[:, None]
    if y_pred.ndim == 1:
        y_pred = y_pred[:, None]
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: y_true {y_true.shape} vs y_pred {y_pred.shape}")
    if y_true.shape[0] < 2:
        raise ValueError("need at least two images to score")
    return y_true, y_pred


def explained_variance_per_site(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Explained variance of each site, ``1 - Var(y - y_hat) / Var(y)``.

    Parameters
    ----------
    y_true, y_pred : array, shape (n_images, n_sites)

    Returns
    -------
    ev : array, shape (n_sites,)
        Same as sklearn's ``explained_variance_score(..., multioutput="raw_values")``:
        a site with zero variance scores 1.0 if predicted exactly, else 0.0.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    return _explained(np.var(y_true - y_pred, axis=0), np.var(y_true, axis=0))


def _explained(var_res: np.ndarray, var_true: np.ndarray) -> np.ndarray:
    """``1 - var_res / var_true`` elementwise; where ``var_true`` is 0: 1.0 if ``var_res`` is 0 too, else 0.0."""
    ev = np.ones_like(var_true, dtype=np.float64)
    nonzero = var_true > 0
    ev[nonzero] = 1.0 - var_res[nonzero] / var_true[nonzero]
    ev[~nonzero & (var_res > 0)] = 0.0
    return ev


def explained_variance(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Explained variance averaged uniformly over sites.

    Parameters
    ----------
    y_true, y_pred : array, shape (n_images, n_sites)

    Returns
    -------
    float
        Equal to sklearn's ``explained_variance_score(..., multioutput="uniform_average")``.
    """
    return float(np.mean(explained_variance_per_site(y_true, y_pred)))


class ObjectSums(dict):
    """What explained variance needs of a set of predictions, summed per object, so that the EV of any multiset of
    objects (a bootstrap resample) is exact without the images.

    Keys: ``objects`` (n_objects,) names; ``count`` (n_objects,) images per object; ``sum_e``, ``sum_e2``,
    ``sum_y``, ``sum_y2`` (n_objects, n_sites): sums of the residual ``y - y_hat``, of its square, of ``y`` and of
    its square over each object's images (float64).
    """


def object_sums(y_true: np.ndarray, y_pred: np.ndarray, objects: np.ndarray) -> ObjectSums:
    """Per-object sums of residuals and responses.

    Parameters
    ----------
    y_true, y_pred : array, shape (n_images, n_sites)
    objects : array of str, shape (n_images,)

    Returns
    -------
    ObjectSums
        :func:`explained_variance_of_objects` of it with every object once equals
        :func:`explained_variance` of ``y_true, y_pred``.
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    names, index = np.unique(np.asarray(objects).astype(str), return_inverse=True)
    residual = y_true - y_pred

    def per_object(values: np.ndarray) -> np.ndarray:
        sums = np.zeros((len(names), values.shape[1]))
        np.add.at(sums, index, values)
        return sums

    return ObjectSums(objects=names, count=np.bincount(index, minlength=len(names)).astype(np.float64),
                      sum_e=per_object(residual), sum_e2=per_object(residual**2), sum_y=per_object(y_true),
                      sum_y2=per_object(y_true**2))


def explained_variance_of_objects(sums: ObjectSums, weights: np.ndarray) -> np.ndarray:
    """Explained variance (uniform over sites) of resampled sets of objects, from per-object sums.

    Parameters
    ----------
    sums : ObjectSums
    weights : array, shape (n_sets, n_objects)
        How many times each object is in each set (a bootstrap resample's counts).

    Returns
    -------
    array, shape (n_sets,)
        Per set, what :func:`explained_variance` gives on the images of its objects (each taken as many times
        as its object), with the same convention for sites of zero variance.
    """
    n = weights @ sums["count"]  # (n_sets,)

    def variance(total: np.ndarray, squares: np.ndarray) -> np.ndarray:
        mean = (weights @ total) / n[:, None]
        return np.maximum((weights @ squares) / n[:, None] - mean**2, 0.0)

    return _explained(variance(sums["sum_e"], sums["sum_e2"]), variance(sums["sum_y"], sums["sum_y2"])).mean(axis=1)


def pearson_per_site(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson correlation of each site across images.

    Parameters
    ----------
    y_true, y_pred : array, shape (n_images, n_sites)

    Returns
    -------
    r : array, shape (n_sites,)
        0.0 where either side is constant (the correlation is undefined there).
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    t = y_true - y_true.mean(axis=0)
    p = y_pred - y_pred.mean(axis=0)
    denom = np.sqrt((t**2).sum(axis=0) * (p**2).sum(axis=0))
    r = np.zeros(y_true.shape[1])
    ok = denom > 0
    r[ok] = (t * p).sum(axis=0)[ok] / denom[ok]
    return r


def r2_per_site(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination of each site, ``1 - SS_res / SS_tot``.

    Unlike explained variance, a constant offset in the prediction is penalised,
    so ``R^2 <= EV <= r^2`` for every site.

    Parameters
    ----------
    y_true, y_pred : array, shape (n_images, n_sites)

    Returns
    -------
    r2 : array, shape (n_sites,)
    """
    y_true, y_pred = _check_pair(y_true, y_pred)
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.ones(y_true.shape[1])
    ok = ss_tot > 0
    r2[ok] = 1.0 - ss_res[ok] / ss_tot[ok]
    r2[~ok & (ss_res > 0)] = 0.0
    return r2


def split_half_reliability(
    repetitions: np.ndarray, n_splits: int = 50, seed: int = 0
) -> np.ndarray:
    """Spearman-Brown corrected split-half reliability of trial-averaged responses.

    Repetitions are split at random into two halves, the half-means are correlated
    across images per site, and the correlation is corrected to the full number of
    repetitions: ``rho_full = 2 rho / (1 + rho)``. The result estimates the fraction
    of the variance of the trial-averaged response that is stimulus-driven, i.e. the
    highest explained variance a perfect model can reach (the EV noise ceiling); its
    square root is the ceiling for Pearson r.

    Parameters
    ----------
    repetitions : array, shape (n_repetitions, n_images, n_sites)
        Single-trial responses; ``n_repetitions >= 2``.
    n_splits : int
        Random half splits averaged over.
    seed : int
        Seed of the random splits.

    Returns
    -------
    reliability : array, shape (n_sites,)
        Clipped below at 0.
    """
    reps = np.asarray(repetitions, dtype=np.float64)
    if reps.ndim != 3 or reps.shape[0] < 2:
        raise ValueError(
            f"repetitions must have shape (n_repetitions>=2, n_images, n_sites), got {reps.shape}"
        )
    n_rep = reps.shape[0]
    rng = np.random.default_rng(seed)
    rhos = np.zeros((n_splits, reps.shape[2]))
    for k in range(n_splits):
        order = rng.permutation(n_rep)
        half_a = reps[order[: n_rep // 2]].mean(axis=0)
        half_b = reps[order[n_rep // 2 : 2 * (n_rep // 2)]].mean(axis=0)
        rhos[k] = pearson_per_site(half_a, half_b)
    rho = rhos.mean(axis=0)
    # Each half holds n_rep // 2 repetitions; correct to the full n_rep.
    factor = n_rep / (n_rep // 2)
    corrected = factor * rho / (1.0 + (factor - 1.0) * rho)
    return np.clip(corrected, 0.0, None)


# Resamples of the bootstrap over objects (the re-check's, the ladder's).
BOOTSTRAP_RESAMPLES = 1000


def resample_counts(n_objects: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Bootstrap resamples of ``n_objects`` objects (all images of an object together), as counts.

    Returns
    -------
    array, shape (resamples, n_objects)
        How many times each object is drawn in each resample; each row sums to ``n_objects``. Used as the
        ``weights`` of :func:`explained_variance_of_objects`, the same rows for every model compared (paired).
    """
    return np.random.default_rng(seed).multinomial(n_objects, np.full(n_objects, 1 / n_objects),
                                                   size=resamples).astype(np.float64)


# A site whose noise ceiling (EV) is below this carries no information to normalise by: its ceiled EV is left out.
CEILING_FLOOR = 0.1


def ceiled_per_site(ev: np.ndarray, ceiling: np.ndarray, floor: float = CEILING_FLOOR) -> np.ndarray:
    """Each site's EV divided by its noise ceiling (the EV a repetition of the experiment explains), NaN where the
    ceiling is below ``floor``. This is EV / ceiling per site, not Brain-Score's ceiling of the aggregate nor
    Algonauts' r^2 / ceiling.

    Parameters
    ----------
    ev, ceiling : array, shape (n_sites,)

    Returns
    -------
    array, shape (n_sites,)
    """
    ev, ceiling = np.asarray(ev, dtype=np.float64), np.asarray(ceiling, dtype=np.float64)
    out = np.full(ev.shape, np.nan)
    ok = ceiling >= floor
    out[ok] = ev[ok] / ceiling[ok]
    return out


def summarize(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """All scores of one prediction, as plain Python values.

    Parameters
    ----------
    y_true, y_pred : array, shape (n_images, n_sites)

    Returns
    -------
    dict
        ``ev``, ``r_mean``, ``r_median``, ``r2`` (site averages) and the per-site
        arrays ``ev_per_site``, ``r_per_site`` as lists.
    """
    ev = explained_variance_per_site(y_true, y_pred)
    r = pearson_per_site(y_true, y_pred)
    r2 = r2_per_site(y_true, y_pred)
    return {
        "ev": float(ev.mean()),
        "r_mean": float(r.mean()),
        "r_median": float(np.median(r)),
        "r2": float(r2.mean()),
        "ev_per_site": ev.tolist(),
        "r_per_site": r.tolist(),
    }
