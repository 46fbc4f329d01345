"""The selection split: an inner validation set carved out of the training images."""

from __future__ import annotations

import numpy as np


def inner_split(objects: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Carve an inner validation set out of the training images, stratified by object.

    Every object keeps images on both sides (at least one in each when it has two
    or more), so the split asks the same question as the official validation set.

    Parameters
    ----------
    objects : array of str, shape (n_train,)
    fraction : float
        Share of each object's images held out.
    seed : int

    Returns
    -------
    fit_idx, inner_idx : int arrays
        Sorted indices into the training images.
    """
    rng = np.random.default_rng(seed)
    inner = []
    for name in np.unique(objects):
        idx = np.flatnonzero(objects == name)
        if len(idx) < 2:
            continue
        k = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        inner.extend(rng.choice(idx, size=k, replace=False))
    inner = np.sort(np.array(inner, dtype=int))
    fit = np.setdiff1d(np.arange(len(objects)), inner)
    return fit, inner
