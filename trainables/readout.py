"""Ridge readouts of fixed features: pixels, or one layer of a network (the report's linear and task-driven models).

The features come from :mod:`trainables.features` (cached); alpha is chosen by
object-stratified cross-validation on the images being fitted
(:func:`trainables.ridge.ridge_cv`) unless the config fixes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis.metrics import explained_variance, pearson_per_site
from trainables.data import ITData, inner_split
from trainables.features import FeatureCache, layer_features, pixel_features
from trainables.ridge import DEFAULT_ALPHAS, object_folds, ridge_cv, ridge_predict

log = logging.getLogger(__name__)


def features_for(config: dict, data: ITData, cache_folder: Path | None) -> dict[str, np.ndarray]:
    """Features of the config's layer: part (train / val / test) -> array (N, F)."""
    if config["layer"] == "pixels":
        return pixel_features(data)
    cache = FeatureCache(cache_folder) if cache_folder else None
    layers = layer_features(data, config["backbone"], config["weights"], [config["layer"]], config["feature_pool"],
                            cache)
    return layers[config["layer"]]


@dataclass
class ReadoutFit:
    """A fitted readout's predictions and choice of alpha.

    Attributes
    ----------
    alpha : float or array (n_sites,)
    predictions : dict part -> array (N, n_sites)
    """

    alpha: float | np.ndarray
    predictions: dict


def fit_ridge(config: dict, x_fit: np.ndarray, y_fit: np.ndarray, objects_fit: np.ndarray,
              x_new: dict[str, np.ndarray]) -> ReadoutFit:
    """Choose alpha on (x_fit, y_fit) by CV unless fixed, fit, predict every array in ``x_new``.

    Features are divided by one number, the root mean variance of the fitted images'
    features, so that the alpha grid means the same for every layer (activations of
    a random deep network can be 1e-6 in scale, where every alpha of the grid would
    shrink the fit to nothing). One global factor leaves ridge's solution path
    unchanged; alphas are reported in these units.
    """
    scale = float(np.sqrt(np.mean(np.var(x_fit, axis=0)))) or 1.0
    x_fit = x_fit / scale
    x_new = {part: x / scale for part, x in x_new.items()}
    components = config["pca_components"] or None
    alpha = config["alpha"]
    if alpha is None:
        folds = object_folds(objects_fit, config["cv_folds"], config["seed"])
        alpha = ridge_cv(x_fit, y_fit, folds, DEFAULT_ALPHAS, config["alpha_per_site"], components).alpha
    preds = {part: ridge_predict(x_fit, y_fit, x, alpha, components) for part, x in x_new.items()}
    return ReadoutFit(alpha, preds)


def fit_readout_inner(config: dict, data: ITData, cache_folder: Path | None = None) -> dict:
    """The search's view: fit on the training images minus the inner split, score on the inner split.

    Returns
    -------
    dict
        ``inner_ev``, ``inner_r``, ``alpha`` (mean when per site), ``n_features``.
    """
    feats = features_for(config, data, cache_folder)
    fit_idx, inner_idx = inner_split(data.object_train, config["inner_val_fraction"], config["split_seed"])
    x, y = feats["train"], data.spikes_train
    result = fit_ridge(config, x[fit_idx], y[fit_idx], data.object_train[fit_idx], {"inner": x[inner_idx]})
    pred = result.predictions["inner"]
    return {
        "inner_ev": explained_variance(y[inner_idx], pred),
        "inner_r": float(pearson_per_site(y[inner_idx], pred).mean()),
        "alpha": float(np.mean(result.alpha)),
        "n_features": int(x.shape[1]),
    }


def fit_readout_final(config: dict, data: ITData, cache_folder: Path | None = None) -> ReadoutFit:
    """Final training: alpha by CV on the whole training set, fit on it, predict validation and test images."""
    feats = features_for(config, data, cache_folder)
    return fit_ridge(config, feats["train"], data.spikes_train, data.object_train,
                     {"val": feats["val"], "test": feats["test"]})
