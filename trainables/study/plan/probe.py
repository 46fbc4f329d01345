"""Sampling a study's space before Ray starts: validation, the weights it needs, and its families' preparation.

A broken space, a config it would produce that cannot be trained, or missing
ImageNet weights are found here, in the driver, before any trial is launched.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import optuna

from search_spaces import points_to_evaluate
from search_spaces.context import BoundSpace, SpaceContext
from trainables.core.config import hyperparameters
from trainables.data.schema import ITData
from trainables.fitting.families import get_family, validate
from trainables.models.weights import WeightsPolicy, resolve_imagenet

# Enough random samples that every categorical choice of the spaces is seen (10 backbones x 2 weights: a
# given pair is missed with probability 0.95^256, about 2e-6).
PROBE_SAMPLES = 256


def probe_space(space_name: str, ctx: SpaceContext | None = None, n: int = PROBE_SAMPLES,
                image_size: int | None = None) -> list[dict]:
    """Sample the space ``n`` times in memory (its first points, then at random): a broken space fails here.

    Each config is checked as its family checks it (at ``image_size`` px when given).

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
        configs.append(validate(hyperparameters({**trial.params, **fixed}), image_size))
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
    wanted = tuple(sorted({c["backbone"] for c in configs
                           if c["weights"] == "imagenet" and get_family(c["model"]).uses_backbone(c)}))
    found, missing = resolve_imagenet(wanted, policy)
    if missing and fallback:
        ctx = replace(ctx, pretrained=ctx.pretrained - frozenset(missing))
    return WeightsPlan(ctx, wanted, missing, found)


def prepare_families(configs: list[dict], data: ITData, storage: Path) -> None:
    """Each family's one-time work in the driver (e.g. the feature cache) for the configs a space can produce."""
    by_family: dict[str, list[dict]] = {}
    for config in configs:
        by_family.setdefault(config["model"], []).append(config)
    for name, group in sorted(by_family.items()):
        family = get_family(name)
        if family.prepare is not None:
            family.prepare(group, data, storage)
