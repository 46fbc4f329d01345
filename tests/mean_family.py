"""A model family defined in the tests alone: every image predicted by a mean training response.

This module and one registry entry (:func:`register`) are all a new family needs:
the search, its export, final training and ``analysis.compare`` then run it like the
shipped families. It declares a config key of its own, ``shrinkage``, beside its code:
the schema, the range check, the export and final training take it from here, and
no file outside the tests names it. It also carries a study over it
(``mean_response``), which samples ``shrinkage`` and the seed of the inner split.
"""

from __future__ import annotations

import sys

import numpy as np
from ray import cloudpickle

import search_spaces
from trainables.core.config import Field
from trainables.core.metrics import explained_variance, pearson_per_site
from trainables.data.splits import inner_split
from trainables.fitting.families import FAMILIES
from trainables.fitting.family import PROCESS_BYTES, Family, FinalFit

SCIENTIFIC = "shrinkage"
POINTS_TO_EVALUATE: list = []
FIELDS = {"shrinkage": Field((int, float), 1.0, ge=0, le=1,
                             help="mean: how far each object's mean response is shrunk to the grand mean (1: the "
                                  "grand mean alone)")}


def predict(y_fit: np.ndarray, objects_fit: np.ndarray, objects_new: np.ndarray, shrinkage: float) -> np.ndarray:
    """Each new image's prediction: its object's mean response over the fitted images, shrunk toward their grand mean
    by ``shrinkage``; shapes (N_fit, n_sites), (N_fit,), (N_new,) -> (N_new, n_sites)."""
    grand = y_fit.mean(axis=0)
    means = {o: y_fit[objects_fit == o].mean(axis=0) for o in np.unique(objects_fit)}
    return np.stack([shrinkage * grand + (1 - shrinkage) * means.get(o, grand) for o in objects_new])


def search_fit(config, data, session) -> None:
    fit_idx, inner_idx = inner_split(data.object_train, config["inner_val_fraction"], config["split_seed"])
    y, objects = data.spikes_train, data.object_train
    pred = predict(y[fit_idx], objects[fit_idx], objects[inner_idx], config["shrinkage"])
    session.report({"inner_ev": explained_variance(y[inner_idx], pred),
                    "inner_r": float(np.nan_to_num(pearson_per_site(y[inner_idx], pred)).mean())}, done=True)


def final_fit(config, data, ctx) -> FinalFit:
    def part(objects):
        return predict(data.spikes_train, data.object_train, objects, config["shrinkage"])

    return FinalFit(part(data.object_val), part(data.object_test), {"shrinkage": config["shrinkage"]})


FAMILY = Family(name="mean", search_fit=search_fit, final_fit=final_fit,
                memory_bytes=lambda config, shape, on_gpu: PROCESS_BYTES, deterministic=True, fields=FIELDS)


def mean_response(trial, ctx) -> dict:
    trial.suggest_float("shrinkage", 0.0, 1.0)
    trial.suggest_categorical("split_seed", [0, 1, 2])
    return {"model": "mean"}


def register() -> None:
    """The registry entries: the family, and the study over it."""
    FAMILIES["mean"] = FAMILY
    search_spaces.SEARCH_SPACES["mean_response"] = mean_response
    # Ray's workers unpickle the family by value: they need not find this test module on their path.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
