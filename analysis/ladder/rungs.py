"""The ladder's input: the final trainings of each rung and the one validation set they are scored on.

``trainables.ladder`` builds these from the runs it trained; nothing here reads a study.
Every array is on the official validation images, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Run:
    """One final training of a rung (one seed), as ``trainables.train`` wrote it.

    Attributes
    ----------
    seed : int
    folder : Path
        Holds ``metrics.json``, ``config.json``, ``predictions_val.npy``, ``sites.csv``, ``site_responses.png``,
        ``rdm.png`` ...
    pred_val : array, shape (n_val, n_sites)
        Predictions on the official validation images.
    metrics : dict
        Its ``metrics.json`` (``ev``, ``r_mean``, ``ev_per_site``, ``r_per_site``, ``references``,
        ``noise_ceiling_ev_per_site``, ``data_fingerprint`` ...).
    """

    seed: int
    folder: Path
    pred_val: np.ndarray
    metrics: dict


@dataclass
class Rung:
    """One row of Table 1: the best config for one value of a study's ladder axes.

    Attributes
    ----------
    study : str
        The study's name (``layer_sweep``).
    group : str
        Table 1's group heading (``pixels``, ``task-driven features``, ``shallow CNN``, ``fine-tuned``).
    label : str
        The row's label (``ridge, PCA 1000``; ``block12, imagenet``; ``vgg11_bn, 5 blocks``).
    axes : dict
        The ladder axes' values (``{"layer": "block12", "weights": "imagenet"}``); empty for a network study.
    trial_id : str
        The search trial the config came from.
    config_path : Path
        The config file trained.
    source : str
        ``re-check`` or ``search``: where the rung's config was taken from.
    deterministic : bool
        A fit a seed does not change (readouts): one run, no ensemble row.
    runs : list of Run
        One per seed.
    notes : tuple of str
        What its study's search said when it started (a backbone whose ImageNet weights were missing, which then
        ran from random weights): said again under the table, since it changes what the row is.
    """

    study: str
    group: str
    label: str
    axes: dict
    trial_id: str
    config_path: Path
    source: str
    deterministic: bool
    runs: list[Run]
    notes: tuple = ()


@dataclass
class ValData:
    """The one validation set every rung is scored on.

    Attributes
    ----------
    y : array, shape (n_val, n_sites)
        Measured (trial-averaged) responses.
    objects : array of str, shape (n_val,)
        Object names, ``<category>_<k>``.
    ceiling : array, shape (n_sites,), or None
        Split-half EV ceiling per site (Spearman-Brown); None without repetitions.
    references : dict
        Name -> validation EV of the ideal observers (labels only), e.g. ``{"object ideal observer": 0.07}``.
    fingerprint : str
        The data set's fingerprint.
    """

    y: np.ndarray
    objects: np.ndarray
    ceiling: np.ndarray | None
    references: dict
    fingerprint: str


@dataclass
class Ensemble:
    """Several configs of one study averaged: the best study's re-checked top-K configs, each over the same seeds.

    Attributes
    ----------
    label : str
        The row's label (``top-3 configs x 3 seeds``).
    study : str
        The study the configs came from; the row follows that study's rows.
    members : list of Run
        Every config's every seed; their validation predictions are averaged.
    """

    label: str
    study: str
    members: list[Run]
