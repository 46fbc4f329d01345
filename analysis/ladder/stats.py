"""The ladder's statistics, pure numpy: per run, per row over seeds, over validation objects, between rows.

Every score is computed per site on the official validation images and then
averaged over sites (:mod:`trainables.core.metrics`):

- **EV**: explained variance, the uniform site average (scikit-learn's ``explained_variance_score``);
- **Corr**: the mean Pearson r over sites;
- **ceiled EV**: the mean over sites of EV / noise ceiling, over the sites whose ceiling is at least
  :data:`CEILING_FLOOR` (a site near 0 would divide by its noise; the table counts the sites left out), each site's
  ratio as :func:`trainables.core.metrics.ceiled_per_site` gives it (a final training's ``sites.csv`` too).

Uncertainty has two sources. **Seeds**: a row's mean and SD over its runs. **Images**:
a bootstrap over validation objects, all images of an object together (images of one
object are not independent), :data:`RESAMPLES` resamples drawn once with a fixed seed
and shared by every row, as the re-check's bootstrap
(:func:`trainables.study.recheck.stats.bootstrap`) shares them between configs. A row's
statistic in each resample is its seed-mean EV; its 95 % interval is the estimate
+- 1.96 standard deviations of the resamples (the re-check's standard error over
objects). The percentile interval would sit off the estimate: EV is a ratio, and
resampling objects changes each site's variance of responses, which biases the
resampled EV low (the estimate lies at the 60th-76th percentile of its resamples).
Because every row sees the same resampled objects, the difference of two rows has a
**paired** interval: the image sampling both rows share cancels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from trainables.core.metrics import (BOOTSTRAP_RESAMPLES, CEILING_FLOOR, ceiled_per_site, explained_variance_of_objects,
                                     explained_variance_per_site, object_sums, pearson_per_site, resample_counts)

# As many resamples as the re-check's bootstrap.
RESAMPLES = BOOTSTRAP_RESAMPLES
LEVEL = 0.95


@dataclass(frozen=True)
class RunScores:
    """One prediction's scores on the validation set.

    Attributes
    ----------
    ev, r : float
        Site averages of explained variance and Pearson r.
    ceiled : float
        Mean EV / ceiling over the sites whose ceiling is at least the floor; NaN without a ceiling.
    ev_per_site, r_per_site : array, shape (n_sites,)
    """

    ev: float
    r: float
    ceiled: float
    ev_per_site: np.ndarray
    r_per_site: np.ndarray


@dataclass(frozen=True)
class Difference:
    """A difference between two statistics with its paired bootstrap interval.

    Attributes
    ----------
    value : float
        The difference on the full validation set.
    low, high : float
        Its interval over the resampled objects (:func:`interval`).
    """

    value: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of 0: the difference is resolved by these images."""
        return self.low > 0 or self.high < 0


def ceiled_sites(ceiling: np.ndarray, floor: float = CEILING_FLOOR) -> np.ndarray:
    """The sites that enter the ceiled EV.

    Parameters
    ----------
    ceiling : array, shape (n_sites,)
        Split-half EV ceiling per site.

    Returns
    -------
    array of bool, shape (n_sites,)
        True where the ceiling is at least ``floor`` (as :func:`trainables.core.metrics.ceiled_per_site` keeps them).
    """
    return np.asarray(ceiling, dtype=float) >= floor


def ceiled_ev(ev_per_site: np.ndarray, ceiling: np.ndarray | None, floor: float = CEILING_FLOOR) -> float:
    """Mean over sites of EV / ceiling, over the sites whose ceiling is at least ``floor``.

    Parameters
    ----------
    ev_per_site, ceiling : array, shape (n_sites,)

    Returns
    -------
    float
        NaN without a ceiling or without a site above the floor.
    """
    if ceiling is None:
        return math.nan
    ratio = ceiled_per_site(ev_per_site, ceiling, floor)
    kept = np.isfinite(ratio)
    return float(ratio[kept].mean()) if kept.any() else math.nan


def score_run(y: np.ndarray, pred: np.ndarray, ceiling: np.ndarray | None = None,
              floor: float = CEILING_FLOOR) -> RunScores:
    """EV, Corr and ceiled EV of one prediction.

    Parameters
    ----------
    y, pred : array, shape (n_images, n_sites)
    ceiling : array, shape (n_sites,), optional

    Returns
    -------
    RunScores
    """
    ev = explained_variance_per_site(y, pred)
    r = pearson_per_site(y, pred)
    return RunScores(float(ev.mean()), float(r.mean()), ceiled_ev(ev, ceiling, floor), ev, r)


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample SD (``ddof=1``) of a row's per-seed values.

    Parameters
    ----------
    values : array-like, shape (n_seeds,)

    Returns
    -------
    (mean, sd)
        SD is NaN for a single value (one seed says nothing of the spread).
    """
    v = np.asarray(values, dtype=float)
    if not len(v):
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan


def object_resamples(objects: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """Bootstrap resamples of the validation objects, as counts.

    Parameters
    ----------
    objects : array of str, shape (n_images,)
        Each image's object.
    resamples : int
    seed : int

    Returns
    -------
    array, shape (resamples, n_objects)
        How many times each object (in the sorted order of ``np.unique``, as
        :func:`trainables.core.metrics.object_sums` orders them) is drawn in each resample; each row sums to
        ``n_objects``.
    """
    return resample_counts(len(np.unique(np.asarray(objects).astype(str))), resamples, seed)


def resampled_ev(y: np.ndarray, pred: np.ndarray, objects: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """EV of one prediction on each resample of the validation objects.

    Parameters
    ----------
    y, pred : array, shape (n_images, n_sites)
    objects : array of str, shape (n_images,)
    weights : array, shape (resamples, n_objects)
        From :func:`object_resamples` of the same ``objects``.

    Returns
    -------
    array, shape (resamples,)
        A row of ``weights`` with every count 1 gives :func:`trainables.core.metrics.explained_variance`.
    """
    return explained_variance_of_objects(object_sums(y, pred, objects), weights)


def seed_mean_ev(y: np.ndarray, preds: list[np.ndarray], objects: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """A row's statistic on each resample: the mean over its seeds of their EVs.

    Parameters
    ----------
    y : array, shape (n_images, n_sites)
    preds : list of arrays, shape (n_images, n_sites)
        One per seed.
    objects : array of str, shape (n_images,)
    weights : array, shape (resamples, n_objects)

    Returns
    -------
    array, shape (resamples,)
    """
    return np.mean([resampled_ev(y, p, objects, weights) for p in preds], axis=0)


def interval(value: float, samples: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The normal interval of a statistic from its bootstrap samples: ``value`` +- z standard deviations of them.

    Parameters
    ----------
    value : float
        The statistic on the full validation set.
    samples : array, shape (resamples,)
        The statistic on each resample.
    level : float
        0.95: z = 1.96.

    Returns
    -------
    (low, high)
    """
    z = NormalDist().inv_cdf((1 + level) / 2)
    sd = float(np.std(np.asarray(samples, dtype=float), ddof=1))
    return float(value - z * sd), float(value + z * sd)


def difference(value_a: float, value_b: float, samples_a: np.ndarray, samples_b: np.ndarray,
               level: float = LEVEL) -> Difference:
    """``a - b`` with the interval of the paired resamples' differences (:func:`interval`).

    Parameters
    ----------
    value_a, value_b : float
        The two statistics on the full validation set.
    samples_a, samples_b : array, shape (resamples,)
        The same statistics on the same resamples (the same row of weights for both: paired).

    Returns
    -------
    Difference
    """
    low, high = interval(value_a - value_b, np.asarray(samples_a) - np.asarray(samples_b), level)
    return Difference(float(value_a - value_b), low, high)


def ensemble_prediction(preds: list[np.ndarray]) -> np.ndarray:
    """Members' predictions averaged.

    Parameters
    ----------
    preds : list of arrays, shape (n_images, n_sites)

    Returns
    -------
    array, shape (n_images, n_sites), float64
    """
    return np.mean([np.asarray(p, dtype=np.float64) for p in preds], axis=0)
