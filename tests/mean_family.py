"""A model family defined in the tests alone: every image predicted by the mean training response.

This module and one registry entry (:func:`register`) are all a new family needs:
the search, its export, final training and ``analysis.compare`` then run it like the
shipped families. It also carries a study over it (``mean_response``), whose only
hyperparameter is the seed of the inner split.
"""

from __future__ import annotations

import sys

import numpy as np
from ray import cloudpickle

import search_spaces
from trainables.core.metrics import explained_variance, pearson_per_site
from trainables.data.splits import inner_split
from trainables.fitting.families import FAMILIES
from trainables.fitting.family import PROCESS_BYTES, Family, FinalFit

SCIENTIFIC = "split_seed"
POINTS_TO_EVALUATE: list = []


def search_fit(config, data, session) -> None:
    fit_idx, inner_idx = inner_split(data.object_train, config["inner_val_fraction"], config["split_seed"])
    y = data.spikes_train
    pred = np.broadcast_to(y[fit_idx].mean(axis=0), (len(inner_idx), y.shape[1]))
    session.report({"inner_ev": explained_variance(y[inner_idx], pred),
                    "inner_r": float(np.nan_to_num(pearson_per_site(y[inner_idx], pred)).mean())}, done=True)


def final_fit(config, data, ctx) -> FinalFit:
    mean = data.spikes_train.mean(axis=0)
    return FinalFit(np.tile(mean, (len(data.object_val), 1)), np.tile(mean, (len(data.object_test), 1)), {})


FAMILY = Family(name="mean", search_fit=search_fit, final_fit=final_fit,
                memory_bytes=lambda config, shape, on_gpu: PROCESS_BYTES, deterministic=True)


def mean_response(trial, ctx) -> dict:
    trial.suggest_categorical("split_seed", [0, 1, 2])
    return {"model": "mean"}


def register() -> None:
    """The registry entries: the family, and the study over it."""
    FAMILIES["mean"] = FAMILY
    search_spaces.SEARCH_SPACES["mean_response"] = mean_response
    # Ray's workers unpickle the family by value: they need not find this test module on their path.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
