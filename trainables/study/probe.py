"""Sampling a study's space before Ray starts: validation, the weights it needs, and the features it reads.

A broken space, a config it would produce that cannot be trained, or missing
ImageNet weights are found here, in the driver, before any trial is launched.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import optuna

from search_spaces import points_to_evaluate
from search_spaces.context import BoundSpace, SpaceContext
from trainables.core.config import from_trial, uses_backbone
from trainables.models.weights import WeightsPolicy, resolve_imagenet

# Enough random samples that every categorical choice of the spaces is seen (10 backbones x 2 weights: a
# given pair is missed with probability 0.95^256, about 2e-6).
PROBE_SAMPLES = 256


def probe_space(space_name: str, ctx: SpaceContext | None = None, n: int = PROBE_SAMPLES) -> list[dict]:
    """Sample the space ``n`` times in memory (its first points, then at random): a broken space fails here.

    Returns
    -------
    list of dict
        The ``n`` validated configs, exactly as trials would run them.
    """
    space = BoundSpace(space_name, ctx or SpaceContext())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for point in points_to_evaluate(space_name):
        study.enqueue_trial(point)
    configs = []
    for _ in range(n):
        trial = study.ask()
        fixed = space(trial)
        configs.append(from_trial({**trial.params, **fixed}))
        study.tell(trial, 0.0)
    return configs


@dataclass(frozen=True)
class WeightsPlan:
    """Which ImageNet weights a search wants, and what it does about missing ones.

    Attributes
    ----------
    ctx : SpaceContext
        The context the search's trials are sampled in.
    wanted : tuple of str
        Backbones the space would run with ImageNet weights.
    missing : dict
        Backbone -> why its weights are missing (file and how to get it).
    found : dict
        Backbone -> its checkpoint in the torch cache (fetched there where the policy allowed).
    """

    ctx: SpaceContext
    wanted: tuple
    missing: dict
    found: dict


def plan_weights(space_name: str, ctx: SpaceContext, policy: WeightsPolicy, fallback: bool) -> WeightsPlan:
    """The search's context once the ImageNet weights it wants are looked up (and fetched, as ``policy`` allows).

    With ``fallback`` (smoke profile) a backbone whose weights are missing runs with
    random weights, and only that one: the space is then sampled in a context without
    it, so Optuna, MLflow and the export all say ``random`` for it. Without, the
    caller refuses to start and names every missing file.
    """
    configs = probe_space(space_name, ctx)
    wanted = tuple(sorted({c["backbone"] for c in configs if c["weights"] == "imagenet" and uses_backbone(c)}))
    found, missing = resolve_imagenet(wanted, policy)
    if missing and fallback:
        ctx = replace(ctx, pretrained=ctx.pretrained - frozenset(missing))
    return WeightsPlan(ctx, wanted, missing, found)


def precompute_features(space: str, ctx: SpaceContext, data, storage: Path) -> None:
    """Fill the feature cache for the layers a readout study can ask for: one pass per network, in the driver.

    Trials would compute a missing entry themselves; doing it here first means each
    activation is computed once, not once per concurrent trial.
    """
    from trainables.fitting.features import FeatureCache, layer_features

    groups: dict[tuple, set] = {}
    for c in probe_space(space, ctx):
        if c["model"] == "ridge" and uses_backbone(c):
            groups.setdefault((c["backbone"], c["weights"], c["feature_pool"], c["input_size"]), set()).add(c["layer"])
    if not groups:
        return
    cache = FeatureCache(storage / "features")
    for (backbone, weights, pool, input_size), layers in sorted(groups.items()):
        layer_features(data, backbone, weights, sorted(layers), pool, cache, input_size=input_size)
