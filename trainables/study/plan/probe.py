"""A study's space sampled once, in the driver, before Ray starts: its configs, their families, the weights they need.

A broken space, a config it would produce that cannot be trained, or missing
ImageNet weights are found here, before any trial is launched. The command
probes once (:meth:`ProbedSpace.plan` for a new search, :meth:`ProbedSpace.of`
for a resumed one) and hands the :class:`ProbedSpace` to the runner: the configs
it holds size the trials' resources and let each family prepare (the ridge family
fills the feature cache).
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution

from search_spaces import ladder_axes, points_to_evaluate
from search_spaces.context import BoundSpace, SpaceContext
from trainables.core.config import hyperparameters
from trainables.data.schema import ITData
from trainables.fitting.families import config_fields, get_family, validate
from trainables.fitting.family import Family
from trainables.models.weights import WeightsPolicy, resolve_imagenet

log = logging.getLogger(__name__)
# Enough random samples that every categorical choice of the spaces is seen (10 backbones x 2 weights: a
# given pair is missed with probability 0.95^256, about 2e-6).
PROBE_SAMPLES = 256


def probe_space(space_name: str, ctx: SpaceContext | None = None, image_size: int | None = None,
                n: int = PROBE_SAMPLES) -> list[dict]:
    """The ``n`` validated configs of :func:`_probe` (see there)."""
    return _probe(space_name, ctx, image_size, n)[0]


def _probe(space_name: str, ctx: SpaceContext | None = None, image_size: int | None = None,
           n: int = PROBE_SAMPLES) -> tuple[list[dict], dict]:
    """Sample the space ``n`` times in memory (its first points, then at random): a broken space fails here.

    Each config is checked as its family checks it (at ``image_size`` px when given).

    Returns
    -------
    list of dict
        The ``n`` validated configs, exactly as trials would run them.
    dict
        Name -> Optuna distribution of every hyperparameter the space sampled.
    """
    space = BoundSpace(space_name, ctx or SpaceContext())
    fields = config_fields()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for point in points_to_evaluate(space_name):
        study.enqueue_trial(point)
    configs, distributions = [], {}
    for _ in range(n):
        trial = study.ask()
        fixed = space(trial)
        configs.append(validate(hyperparameters({**trial.params, **fixed}, fields), image_size))
        distributions.update(trial.distributions)
        study.tell(trial, 0.0)
    log.debug("probed space %s: %d configs at %s px", space_name, n, image_size)
    return configs, distributions


def ladder_grid(space_name: str, distributions: dict) -> tuple[dict, ...]:
    """Every combination of the space's ladder axes that Optuna samples from a list of choices (an axis the space
    fixes has one value and is left out), in the choices' order; none when an axis is sampled from a range (no grid
    can cover it). A search evaluates these first: every row of the ladder then exists, whatever the sampler."""
    axes = [a for a in ladder_axes(space_name) if a in distributions]
    if not axes or not all(isinstance(distributions[a], CategoricalDistribution) for a in axes):
        return ()
    return tuple(dict(zip(axes, values)) for values in itertools.product(*(distributions[a].choices for a in axes)))


@dataclass(frozen=True)
class ProbedSpace:
    """A study's space, sampled once: what it can run here, and the weights it wants.

    Attributes
    ----------
    name : str
        The space.
    ctx : SpaceContext
        The context its trials are sampled in (backbones whose ImageNet weights are missing in a smoke run are
        left out of ``ctx.pretrained``: they run with random weights, and say so).
    configs : tuple of dict
        Validated configs it produces (its first points first), at ``image_size``.
    image_size : int or None
        Side of the images the configs were checked at.
    wanted : tuple of str
        Backbones the space would run with ImageNet weights.
    missing : dict
        Backbone -> why its weights are missing (file and how to get it).
    found : dict
        Backbone -> its checkpoint in the torch cache.
    grid : tuple of dict
        Every combination of the space's categorical ladder axes (:func:`ladder_grid`).
    """

    name: str
    ctx: SpaceContext
    configs: tuple
    image_size: int | None = None
    wanted: tuple = ()
    missing: dict = field(default_factory=dict)
    found: dict = field(default_factory=dict)
    grid: tuple = ()

    @classmethod
    def of(cls, name: str, ctx: SpaceContext, image_size: int | None) -> "ProbedSpace":
        """The space as a resumed study runs it: in its saved context, weights already planned."""
        configs, distributions = _probe(name, ctx, image_size)
        return cls(name, ctx, tuple(configs), image_size, grid=ladder_grid(name, distributions))

    @classmethod
    def plan(cls, name: str, ctx: SpaceContext, policy: WeightsPolicy, fallback: bool,
             image_size: int | None) -> "ProbedSpace":
        """A new search's space once the ImageNet weights it wants are looked up (and fetched, as ``policy``
        allows).

        With ``fallback`` (smoke profile) a backbone whose weights are missing runs with
        random weights, and only that one: its trials are sampled in a context without it,
        so Optuna, MLflow and the export all say ``random`` for it (:meth:`without`).
        Without, the caller refuses to start and names every missing file.
        """
        probed = cls.of(name, ctx, image_size)
        wanted = tuple(sorted({c["backbone"] for c in probed.configs
                               if c["weights"] == "imagenet" and get_family(c["model"]).uses_backbone(c)}))
        found, missing = resolve_imagenet(wanted, policy)
        probed = replace(probed, wanted=wanted, found=found, missing=missing)
        return probed.without(frozenset(missing)) if missing and fallback else probed

    def without(self, backbones: frozenset) -> "ProbedSpace":
        """The space in a context where ``backbones`` have no ImageNet weights, without sampling it again.

        A space asks its context about weights in two ways only
        (:meth:`~search_spaces.context.SpaceContext.suggest_weights` samples them or fixes ``random``,
        :meth:`~search_spaces.context.SpaceContext.imagenet_or_random` fixes one): under the narrower
        context, the configs it produces are these configs with those backbones' weights set to ``random``
        (``tests/test_search_spaces.py`` checks this against a new probe for every space).
        """
        configs = tuple({**c, "weights": "random"} if c["backbone"] in backbones and c["weights"] == "imagenet"
                        else c for c in self.configs)
        # A backbone that lost its ImageNet weights no longer samples them: a grid over weights goes.
        lost = any(c["backbone"] in backbones for c in self.configs)
        grid = self.grid if not lost else tuple(dict(g) for g in dict.fromkeys(
            tuple((k, v) for k, v in g.items() if k != "weights") for g in self.grid) if g)
        return replace(self, ctx=replace(self.ctx, pretrained=self.ctx.pretrained - backbones), configs=configs,
                       grid=grid)

    def first_points(self) -> list[dict]:
        """The points a new search evaluates first: the space's own (the report's recipe), then each combination of
        its ladder axes that none of them covers (Optuna samples the other hyperparameters of these)."""
        points = points_to_evaluate(self.name)
        covered = [p for p in points if all(k in p for g in self.grid[:1] for k in g)]
        return points + [dict(g) for g in self.grid if not any(all(p[k] == v for k, v in g.items()) for p in covered)]

    @property
    def families(self) -> dict[str, Family]:
        """The families its configs use, by name."""
        return {c["model"]: get_family(c["model"]) for c in self.configs}

    @property
    def max_epochs(self) -> int:
        """The longest recipe's epochs."""
        return max(c["epochs"] for c in self.configs)

    def prepare(self, data: ITData, storage: Path) -> None:
        """Each family's one-time work in the driver (e.g. the feature cache) for the configs the space produces."""
        by_family: dict[str, list[dict]] = {}
        for config in self.configs:
            by_family.setdefault(config["model"], []).append(config)
        for name, group in sorted(by_family.items()):
            family = get_family(name)
            if family.prepare is not None:
                family.prepare(group, data, storage)
