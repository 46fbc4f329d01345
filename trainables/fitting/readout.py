"""Ridge readouts of fixed features: pixels, or one layer of a network (the report's linear and task-driven models).

The features come from :mod:`trainables.fitting.features` (cached); alpha is chosen by
object-stratified cross-validation on the images being fitted
(:func:`trainables.fitting.ridge.ridge_cv`) unless the config fixes it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.core.metrics import explained_variance, pearson_per_site
from trainables.data.schema import ITData
from trainables.data.splits import inner_split
from trainables.fitting.features import FeatureCache, layer_features, pixel_features
from trainables.fitting.ridge import DEFAULT_ALPHAS, gram_matrix, object_folds, ridge_cv, ridge_predict, ridge_predict_gram

log = logging.getLogger(__name__)


def features_for(config: dict, data: ITData, cache_folder: Path | None,
                 imagenet_state: dict | None = None) -> dict[str, np.ndarray]:
    """Features of the config's layer: part (train / val / test) -> array (N, F)."""
    if config["layer"] == "pixels":
        return pixel_features(data)
    cache = FeatureCache(cache_folder) if cache_folder else None
    layers = layer_features(data, config["backbone"], config["weights"], [config["layer"]], config["feature_pool"],
                            cache, imagenet_state=imagenet_state, input_size=config["input_size"])
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


Rows = tuple  # (features array (N, F), row indices or None for all): read in place, never copied whole


def _take(rows: Rows) -> np.ndarray:
    x, idx = rows
    return x if idx is None else x[idx]


def _count(rows: Rows) -> int:
    return len(rows[0]) if rows[1] is None else len(rows[1])


def fit_ridge(config: dict, fit: Rows, y_fit: np.ndarray, objects_fit: np.ndarray,
              new: dict[str, Rows]) -> ReadoutFit:
    """Choose alpha on the ``fit`` rows by CV unless fixed, fit, predict the rows of every entry of ``new``.

    Features are divided by one number, the root mean variance of the fitted images'
    features, so that the alpha grid means the same for every layer (activations of
    a random deep network can be 1e-6 in scale, where every alpha of the grid would
    shrink the fit to nothing). One global factor leaves ridge's solution path
    unchanged; alphas are reported in these units.

    With more features than fitted images (pixels, flattened conv maps) everything
    comes from one Gram matrix accumulated in chunks (:func:`trainables.fitting.ridge.gram_matrix`):
    the features are read where they lie, so a 224-px pixel readout needs the Gram
    matrix, not float64 copies of 150,528 columns per fold.
    """
    components = config["pca_components"] or None
    n_fit, n_features = _count(fit), fit[0].shape[1]
    if n_features > n_fit:
        return _fit_ridge_gram(config, fit, y_fit, objects_fit, new, components)
    x_fit = _take(fit)
    scale = float(np.sqrt(np.mean(np.var(x_fit, axis=0)))) or 1.0
    x_fit = x_fit / scale
    alpha = config["alpha"]
    if alpha is None:
        folds = object_folds(objects_fit, config["cv_folds"], config["seed"])
        alpha = ridge_cv(x_fit, y_fit, folds, DEFAULT_ALPHAS, config["alpha_per_site"], components).alpha
    preds = {part: ridge_predict(x_fit, y_fit, _take(rows) / scale, alpha, components) for part, rows in new.items()}
    return ReadoutFit(alpha, preds)


def _fit_ridge_gram(config: dict, fit: Rows, y_fit: np.ndarray, objects_fit: np.ndarray, new: dict[str, Rows],
                    components: int | None) -> ReadoutFit:
    """:func:`fit_ridge` through one Gram matrix of the fitted rows followed by every row to predict."""
    parts = list(new)
    n_fit, n_features = _count(fit), fit[0].shape[1]
    gram = gram_matrix([fit, *(new[p] for p in parts)], n_fit=n_fit)
    g_fit = gram[:n_fit, :n_fit]
    # Mean feature variance over the fitted rows: trace of their centred kernel / (n p); scaling x scales G by s^2.
    variance = float((torch.trace(g_fit) - g_fit.sum() / n_fit) / (n_fit * n_features))
    gram /= variance if variance > 0 else 1.0
    alpha = config["alpha"]
    if alpha is None:
        folds = object_folds(objects_fit, config["cv_folds"], config["seed"])
        alpha = ridge_cv(None, y_fit, folds, DEFAULT_ALPHAS, config["alpha_per_site"], components,
                         gram=gram[:n_fit, :n_fit]).alpha
    preds, start = {}, n_fit
    for part in parts:
        stop = start + _count(new[part])
        keep = torch.cat([torch.arange(n_fit), torch.arange(start, stop)]).to(gram.device)
        preds[part] = ridge_predict_gram(gram[keep][:, keep], n_fit, y_fit, alpha, components)
        start = stop
    return ReadoutFit(alpha, preds)


def fit_readout_inner(config: dict, data: ITData, cache_folder: Path | None = None,
                      imagenet_state: dict | None = None) -> dict:
    """The search's view: fit on the training images minus the inner split, score on the inner split.

    Returns
    -------
    dict
        ``inner_ev``, ``inner_r``, ``alpha`` (mean when per site), ``n_features``.
    """
    feats = features_for(config, data, cache_folder, imagenet_state)
    fit_idx, inner_idx = inner_split(data.object_train, config["inner_val_fraction"], config["split_seed"])
    x, y = feats["train"], data.spikes_train
    result = fit_ridge(config, (x, fit_idx), y[fit_idx], data.object_train[fit_idx], {"inner": (x, inner_idx)})
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
    return fit_ridge(config, (feats["train"], None), data.spikes_train, data.object_train,
                     {"val": (feats["val"], None), "test": (feats["test"], None)})
