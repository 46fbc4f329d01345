"""Optuna samplers by ``--searcher`` name: TPE to exploit, quasi-random (QMC) or random to explore."""

from __future__ import annotations

from typing import Callable

import optuna

SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed),
    "qmc": lambda seed: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler called ``name``; ValueError listing the registry otherwise."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown searcher '{name}' (valid: {', '.join(SAMPLERS)})")
    return SAMPLERS[name](seed)
