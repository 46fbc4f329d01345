"""What a search can run, decided once in the driver, and the space bound to it.

A space function is called as ``space(trial, ctx)``: it samples on the Optuna
trial and returns the fixed and derived config entries, asking ``ctx`` what this
search can run (which backbones can load ImageNet weights here, the epoch cap of
the profile). So the space alone decides every value a trial runs: nothing is
rewritten after Optuna recorded it, and what ran = what Optuna recorded = what
MLflow shows = what the export writes.

:class:`BoundSpace` is the callable Ray's Optuna searcher and the probe get: the
space with its context, picklable (a module-level class holding names and data).
It caps the fixed ``epochs`` (a profile's budget cap, never a sampled value),
sets the search's seed, and refuses a space that would return a value for a
hyperparameter it also sampled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from search_spaces import get_space
from trainables.core.config import COMMON_FIELDS
from trainables.models.weights import IMAGENET_WEIGHTS


@dataclass(frozen=True)
class SpaceContext:
    """The search's facts a space may ask about.

    Attributes
    ----------
    pretrained : frozenset of str
        Backbones whose ImageNet weights this search can load (default: every backbone that has them).
    max_epochs : int or None
        The profile's cap on a trial's epochs; None: no cap.
    seed : int
        Seed of every trial (the search's ``--seed``).
    """

    pretrained: frozenset = field(default_factory=lambda: frozenset(IMAGENET_WEIGHTS))
    max_epochs: int | None = None
    seed: int = 0

    def suggest_weights(self, trial, backbone: str) -> dict:
        """Sample ``weights`` where both kinds can run; else fix the only kind possible.

        A backbone without ImageNet weights here (none exist, or they are missing in a
        smoke run) gets ``random`` as a fixed entry, not a sample, so that Optuna never
        records a choice the trial did not run.

        Returns
        -------
        dict
            ``{}`` when ``weights`` was sampled, else ``{"weights": "random"}``.
        """
        if backbone in self.pretrained:
            trial.suggest_categorical("weights", ["imagenet", "random"])
            return {}
        return {"weights": "random"}

    def imagenet_or_random(self, backbone: str) -> str:
        """``imagenet`` where this search can load it for ``backbone``, else ``random`` (a fixed entry)."""
        return "imagenet" if backbone in self.pretrained else "random"


class BoundSpace:
    """The space called ``name`` with ``ctx`` bound: ``BoundSpace(name, ctx)(trial) -> fixed entries``."""

    def __init__(self, name: str, ctx: SpaceContext):
        get_space(name)  # unknown name: ValueError listing the registry
        self.name, self.ctx = name, ctx

    def __call__(self, trial) -> dict:
        fixed = dict(get_space(self.name)(trial, self.ctx) or {})
        clash = sorted(set(fixed) & set(trial.params))
        if clash:
            raise ValueError(f"space '{self.name}' both samples and fixes {clash[0]!r}")
        if "epochs" not in trial.params and self.ctx.max_epochs is not None:
            fixed["epochs"] = min(fixed.get("epochs", COMMON_FIELDS["epochs"].default), self.ctx.max_epochs)
        fixed.setdefault("seed", self.ctx.seed)
        return fixed

    def __repr__(self) -> str:
        return f"BoundSpace({self.name!r}, {self.ctx!r})"

