"""What a model family is: everything the search, final training and budgets decide per family.

A family (config key ``model``) is one :class:`Family` value in
:data:`trainables.fitting.families.FAMILIES`: the config keys it reads (declared
beside its code, as :class:`~trainables.core.config.Field` values), how a config of
it is checked, fitted inside a search trial (on the inner split), fitted for good
(scored once on the official validation set), how much host memory a trial needs,
what the driver prepares once before trials start, what it reports per epoch, and
the reference scores it gives (the ideal observers). Adding a family is one module
that builds a ``Family`` and one registry entry; nothing else in the project names
families or their keys: the config schema, the README's key table and the study's
metrics are assembled from the registry.

Nothing here knows of Ray: a trial reports through a :class:`TrialSession`, which
the search implements over Ray Tune (:mod:`trainables.study.run.trial`) and which a
test or a benchmark can implement in a few lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

from trainables.core.metrics import ObjectSums
from trainables.data.schema import ITData


class TrialSession(Protocol):
    """What a family's search fit reports to (Ray Tune in a search).

    Attributes
    ----------
    feature_cache : Path or None
        Folder of cached layer activations shared by the search's trials.
    """

    feature_cache: Path | None

    def resume_state(self) -> dict | None:
        """The state a resumed trial continues from (what ``resumable`` returned at its last checkpoint), or None."""

    def report(self, metrics: dict, done: bool, resumable: Callable[[], dict] | None = None,
               weights: Callable[[], dict] | None = None, inner_sums: Callable[[], ObjectSums] | None = None) -> None:
        """Report one epoch (a one-step fit: its only one).

        ``metrics`` holds at least ``inner_ev`` and ``inner_r`` (EV and mean r on the inner split)
        and may hold ``best_inner_ev`` (else the best ``inner_ev`` reported so far is used);
        ``done`` says the fit ended on its own. ``resumable()`` gives a state to continue
        from and ``weights()`` the best weights, each called only when the session saves it;
        ``inner_sums()``, at the end, the best fit's inner-split residuals summed per object
        (:func:`trainables.core.metrics.object_sums`), which the re-check resamples.
        """


@dataclass(frozen=True)
class FinalContext:
    """What a final fit may use besides its config and data: its output folder and the feature cache."""

    out: Path
    feature_cache: Path | None


@dataclass
class FinalFit:
    """A final fit's predictions and what it adds to ``metrics.json``.

    Attributes
    ----------
    pred_val : array, shape (N_val, n_sites)
    pred_test : array, shape (N_test, n_sites)
    info : dict
        Added to ``metrics.json`` (a network's ``history`` and ``best_epoch``, a readout's ``alpha``...).
    model : torch.nn.Module or None
        The fitted network, logged to MLflow; None for families without one.
    curve : list of dict or None
        A fit over epochs: per epoch ``epoch``, ``train_loss`` and ``inner_ev`` (drawn as its learning curve);
        None for a one-step fit.
    best_epoch : int or None
        The epoch of ``curve`` whose weights were kept.
    """

    pred_val: np.ndarray
    pred_test: np.ndarray
    info: dict
    model: torch.nn.Module | None = None
    curve: list | None = None
    best_epoch: int | None = None


@dataclass(frozen=True)
class DataShape:
    """The sizes a memory estimate needs: images of the data set (all parts), their shape (3, H, W), sites."""

    n_images: int
    image_shape: tuple
    n_sites: int

    @classmethod
    def of(cls, data: ITData) -> "DataShape":
        n = len(data.stimulus_train) + len(data.stimulus_val) + len(data.stimulus_test)
        return cls(n, tuple(data.stimulus_train.shape[1:]), data.n_sites)


def _no_check(config: dict, image_size: int | None) -> None:
    return None


def _never(config: dict) -> bool:
    return False


@dataclass(frozen=True)
class Family:
    """A model family.

    Attributes
    ----------
    name : str
        The config's ``model`` value.
    search_fit : callable
        ``(config, data, session)``: fit on the training images minus the inner split, report to ``session``.
    final_fit : callable
        ``(config, data, FinalContext) -> FinalFit``: fit on all training images, predict validation and test.
    memory_bytes : callable
        ``(config, DataShape, on_gpu) -> int``: host memory one trial adds beyond the shared images
        (a coarse upper bound; Ray reserves it per trial).
    check : callable
        ``(config, image_size or None)``: raise ``ConfigError`` for a config of this family that cannot be
        fitted (at ``image_size`` px when known), before any work starts.
    uses_backbone : callable
        ``(config) -> bool``: whether the config runs its backbone (and so may need ImageNet weights).
    prepare : callable or None
        ``(configs, data, storage)``: work the search's driver does once for the configs a space can
        produce, before trials start (e.g. fill the feature cache).
    deterministic : bool
        Whether a fit gives the same result for every seed (a readout, a lookup): the re-check then
        compares configs by resampling images, not seeds.
    fields : dict
        The config keys this family reads besides every config's
        (:data:`~trainables.core.config.COMMON_FIELDS`): key -> :class:`~trainables.core.config.Field`.
        A key two families read (a backbone's) is the same ``Field`` in both.
    epoch_metrics : tuple of str
        What its search fit reports per epoch besides every trial's (the study logs them to MLflow).
    references : callable or None
        ``(data, config, final) -> {name: EV}``: scores of predictors that read no pixels (the ideal
        observers), which any model must beat; fitted as ``config``'s search scores (the inner split) or,
        with ``final``, on all training images and scored on the official validation set.
    """

    name: str
    search_fit: Callable[[dict, ITData, TrialSession], None]
    final_fit: Callable[[dict, ITData, FinalContext], FinalFit]
    memory_bytes: Callable[[dict, DataShape, bool], int]
    check: Callable[[dict, "int | None"], None] = _no_check
    uses_backbone: Callable[[dict], bool] = _never
    prepare: Callable[[list, ITData, Path], None] | None = None
    deterministic: bool = False
    fields: dict = field(default_factory=dict)
    epoch_metrics: tuple = ()
    references: Callable[[ITData, dict, bool], dict] | None = None


# Every trial runs in a Python process with torch, Ray and its libraries loaded.
PROCESS_BYTES = 1024**3
