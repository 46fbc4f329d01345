"""Optuna samplers by ``--searcher`` name: TPE to exploit, quasi-random (QMC, the default: see
:mod:`trainables.study.plan.defaults`) or random to explore."""

from __future__ import annotations

import warnings
from typing import Callable

import optuna


def _qmc(seed: int) -> optuna.samplers.QMCSampler:
    # Scrambled: unscrambled Sobol ignores the seed, so every --seed would search the same points.
    with warnings.catch_warnings():  # "experimental" since Optuna 3.0: the default searcher should not warn each run
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(scramble=True, seed=seed, warn_independent_sampling=False)


SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "qmc": _qmc,
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler called ``name``; ValueError listing the registry otherwise."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown searcher '{name}' (valid: {', '.join(SAMPLERS)})")
    return SAMPLERS[name](seed)
