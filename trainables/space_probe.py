"""Sampling a study's space before Ray starts: validation, the weights it needs, and the features it reads.

A broken space, a config it would produce that cannot be trained, or missing
ImageNet weights are found here, in the driver, before any trial is launched.
"""

from __future__ import annotations

from pathlib import Path

import optuna

from search_spaces import get_space, points_to_evaluate
from trainables.backbones import build_backbone
from trainables.config import from_trial
from trainables.weights import WeightsNotFound


def probe_space(space_name: str, overrides: dict, n: int = 64) -> list[dict]:
    """Sample the space ``n`` times in memory: a broken space fails here, before Ray starts.

    Returns the ``n`` validated configs sampled (with overrides applied), so that
    the weights they need can be checked.
    """
    space = get_space(space_name)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for point in points_to_evaluate(space_name):
        study.enqueue_trial(point)
    configs = []
    for _ in range(n):
        trial = study.ask()
        fixed = space(trial) or {}
        configs.append(from_trial({**trial.params, **fixed, **overrides}))
        study.tell(trial, 0.0)
    return configs


def missing_weights(configs: list[dict]) -> dict[str, str]:
    """Backbones among ``configs`` whose ImageNet weights are not on this machine -> the reason."""
    missing = {}
    configs = [c for c in configs if not (c["model"] == "ridge" and c["layer"] == "pixels")]
    for name in sorted({c["backbone"] for c in configs if c["weights"] == "imagenet"}):
        config = next(c for c in configs if c["backbone"] == name and c["weights"] == "imagenet")
        try:
            build_backbone(config)
        except WeightsNotFound as err:
            missing[name] = str(err)
    return missing


def precompute_features(space: str, overrides: dict, data, storage: Path) -> None:
    """Fill the feature cache for the layers a readout study can ask for: one pass per network, in the driver.

    Trials would compute a missing entry themselves; doing it here first means each
    activation is computed once, not once per concurrent trial.
    """
    from trainables.features import FeatureCache, layer_features

    groups: dict[tuple, set] = {}
    for c in probe_space(space, overrides, n=256):
        if c["model"] == "ridge" and c["layer"] != "pixels":
            groups.setdefault((c["backbone"], c["weights"], c["feature_pool"]), set()).add(c["layer"])
    cache = FeatureCache(storage / "features")
    for (backbone, weights, pool), layers in sorted(groups.items()):
        layer_features(data, backbone, weights, sorted(layers), pool, cache)
