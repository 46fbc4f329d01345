"""The ridge family (``model: ridge``): readouts of fixed features, pixels or one layer of a network.

The report's linear and task-driven models. The features come from
:mod:`trainables.fitting.features` (cached, and filled once by the search's driver
before trials start); alpha is chosen by object-stratified cross-validation on the
images being fitted (:func:`trainables.fitting.ridge.ridge_cv`) unless the config
fixes it. A fit is one step: a trial reports once.

Host memory of a trial: the process (1 GiB), the Gram matrix of every image in
float64 and a chunk of feature columns (:func:`trainables.fitting.ridge.gram_matrix`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.core.config import ConfigError, Field
from trainables.core.layout import FEATURES_DIR
from trainables.core.metrics import ObjectSums, explained_variance, object_sums, pearson_per_site
from trainables.data.schema import ITData
from trainables.data.splits import inner_split
from trainables.fitting.family import PROCESS_BYTES, DataShape, Family, FinalContext, FinalFit, TrialSession
from trainables.fitting.features import FeatureCache, layer_features, pixel_features
from trainables.fitting.ridge import (DEFAULT_ALPHAS, gram_matrix, object_folds, ridge_cv, ridge_predict,
                                      ridge_predict_gram)
from trainables.models.backbones import BACKBONE_FIELDS, check_backbone, layer_names
from trainables.models.weights import IMAGENET_WEIGHTS

log = logging.getLogger(__name__)


# The config keys of a readout, beside the backbone's.
READOUT_FIELDS: dict[str, Field] = {
    "layer": Field((str,), "pixels", help="'pixels' or a layer of the backbone"),
    "feature_pool": Field((int,), 1, ge=0, le=64, help="pool side of the layer's map; 0: flatten"),
    "pca_components": Field((int,), 0, ge=0, le=100_000, help="PCA components; 0: none"),
    "alpha": Field((int, float, type(None)), None, ge=0, help="null: by CV; 0: least squares"),
    "alpha_per_site": Field((bool,), False, help="one cross-validated alpha per site"),
    "cv_folds": Field((int,), 5, ge=2, le=64, help="object-stratified folds for alpha"),
}


def features_for(config: dict, data: ITData, cache_folder: Path | None) -> dict[str, np.ndarray]:
    """Features of the config's layer: part (train / val / test) -> array (N, F)."""
    if config["layer"] == "pixels":
        return pixel_features(data)
    cache = FeatureCache(cache_folder) if cache_folder else None
    layers = layer_features(data, config["backbone"], config["weights"], [config["layer"]], config["feature_pool"],
                            cache, input_size=config["input_size"])
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


def fit_readout_inner(config: dict, data: ITData, cache_folder: Path | None = None) -> dict:
    """The search's view: fit on the training images minus the inner split, score on the inner split.

    Returns
    -------
    dict
        ``inner_ev``, ``inner_r``, ``alpha`` (mean when per site), ``n_features``.
    """
    return _fit_inner(config, data, cache_folder)[0]


def _fit_inner(config: dict, data: ITData, cache_folder: Path | None) -> tuple[dict, ObjectSums]:
    """:func:`fit_readout_inner`'s scores, and the inner-split residuals summed per object."""
    feats = features_for(config, data, cache_folder)
    fit_idx, inner_idx = inner_split(data.object_train, config["inner_val_fraction"], config["split_seed"])
    x, y = feats["train"], data.spikes_train
    result = fit_ridge(config, (x, fit_idx), y[fit_idx], data.object_train[fit_idx], {"inner": (x, inner_idx)})
    pred = result.predictions["inner"]
    scores = {
        "inner_ev": explained_variance(y[inner_idx], pred),
        "inner_r": float(pearson_per_site(y[inner_idx], pred).mean()),
        "alpha": float(np.mean(result.alpha)),
        "n_features": int(x.shape[1]),
    }
    return scores, object_sums(y[inner_idx], pred, data.object_train[inner_idx])


def fit_readout_final(config: dict, data: ITData, cache_folder: Path | None = None) -> ReadoutFit:
    """Final training: alpha by CV on the whole training set, fit on it, predict validation and test images."""
    feats = features_for(config, data, cache_folder)
    return fit_ridge(config, (feats["train"], None), data.spikes_train, data.object_train,
                     {"val": (feats["val"], None), "test": (feats["test"], None)})


def search_fit(config: dict, data: ITData, session: TrialSession) -> None:
    """One ridge fit on the fit images, scored on the inner split, reported once."""
    scores, sums = _fit_inner(config, data, session.feature_cache)
    session.report(scores, done=True, inner_sums=lambda: sums)


def final_fit(config: dict, data: ITData, ctx: FinalContext) -> FinalFit:
    """Alpha by CV on the whole training set, fit on it, predict the validation and test images."""
    result = fit_readout_final(config, data, ctx.feature_cache)
    alpha = np.asarray(result.alpha)
    log.info("ridge on %s: alpha %s", config["layer"], f"{float(alpha):.4g}" if alpha.ndim == 0 else "per site")
    return FinalFit(result.predictions["val"], result.predictions["test"], {"alpha": alpha.tolist()})


GRAM_CHUNK = 4096


def memory_bytes(config: dict, shape: DataShape, on_gpu: bool) -> int:
    """Host memory one trial adds beyond the shared images: the Gram matrix (float64) and a chunk of columns."""
    gram = 8 * shape.n_images**2
    chunk = 4 * 3 * GRAM_CHUNK * shape.n_images  # a chunk, its float32 copy and its centred copy
    return PROCESS_BYTES + gram + chunk


def uses_backbone(config: dict) -> bool:
    """A layer readout runs its backbone; a pixel readout does not."""
    return config["layer"] != "pixels"


def check(config: dict, image_size: int | None) -> None:
    """Refuse a readout of a layer its backbone does not have, or ImageNet weights it has none of."""
    if not uses_backbone(config):
        return
    try:
        check_backbone(config["backbone"])
    except ValueError as err:
        raise ConfigError(f"config key 'backbone': {err}") from None
    if config["layer"] not in layer_names(config["backbone"]):
        raise ConfigError(f"config key 'layer': {config['layer']!r} is not a layer of {config['backbone']} "
                          f"(valid: pixels, {', '.join(layer_names(config['backbone']))})")
    if config["weights"] == "imagenet" and config["backbone"] not in IMAGENET_WEIGHTS:
        raise ConfigError(f"config key 'weights': backbone '{config['backbone']}' has no ImageNet weights; "
                          "use 'random'")


def prepare(configs: list[dict], data: ITData, storage: Path) -> None:
    """Fill the feature cache for every layer the configs read: one pass per network, in the search's driver.

    Trials would compute a missing entry themselves; doing it first means each
    activation is computed once, not once per concurrent trial.
    """
    groups: dict[tuple, set] = {}
    for c in configs:
        if uses_backbone(c):
            groups.setdefault((c["backbone"], c["weights"], c["feature_pool"], c["input_size"]), set()).add(c["layer"])
    cache = FeatureCache(Path(storage) / FEATURES_DIR)
    for (backbone, weights, pool, input_size), layers in sorted(groups.items()):
        layer_features(data, backbone, weights, sorted(layers), pool, cache, input_size=input_size)


FAMILY = Family(
    name="ridge",
    search_fit=search_fit,
    final_fit=final_fit,
    memory_bytes=memory_bytes,
    check=check,
    uses_backbone=uses_backbone,
    prepare=prepare,
    deterministic=True,
    # A readout reads a layer of the whole trunk: of the backbone's keys, which one, with which weights, at what size.
    fields={**{k: BACKBONE_FIELDS[k] for k in ("backbone", "weights", "input_size")}, **READOUT_FIELDS},
    epoch_metrics=("alpha",),
)
