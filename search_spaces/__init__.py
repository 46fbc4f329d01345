"""Studies as search spaces: ``SEARCH_SPACES`` maps a CLI name to a define-by-run space function.

A space function takes an Optuna trial and the search's
:class:`~search_spaces.context.SpaceContext`, samples hyperparameters on the trial
(named as config keys, or as helpers such as ``head_width``/``head_depth`` that it
turns into config entries) and returns the fixed and derived config entries; Ray
and the probe call it bound to its context (:class:`~search_spaces.context.BoundSpace`). Its module
holds ``POINTS_TO_EVALUATE`` (configurations tried first, e.g. the report's best),
``SCIENTIFIC`` (the hyperparameter the study asks about) and, for the ladder of
``trainables.ladder``, ``LADDER_AXES`` (the hyperparameters whose every value is a row)
and ``LADDER_GROUP`` (the table's heading for its rows). Functions are
module-level so Ray can pickle them.
"""

from __future__ import annotations

import sys
from typing import Callable

from search_spaces.backbone_screen import backbone_screen
from search_spaces.decoder_head import decoder_head
from search_spaces.layer_sweep import layer_sweep
from search_spaces.resnet_depth import resnet_depth
from search_spaces.ridge_pixels import ridge_pixels
from search_spaces.shallow_cnn import shallow_cnn
from search_spaces.vgg_depth import vgg_depth

SEARCH_SPACES: dict[str, Callable] = {
    "vgg_depth": vgg_depth,
    "resnet_depth": resnet_depth,
    "decoder_head": decoder_head,
    "backbone_screen": backbone_screen,
    "shallow_cnn": shallow_cnn,
    "ridge_pixels": ridge_pixels,
    "layer_sweep": layer_sweep,
}

# Sampled names that are not config keys; the space turns them into config entries.
HELPER_PARAMS = frozenset({"head_width", "head_depth", "tuning", "regression"})


def get_space(name: str) -> Callable:
    """The space function called ``name``; ValueError listing the registry otherwise."""
    if name not in SEARCH_SPACES:
        raise ValueError(f"unknown space '{name}' (valid: {', '.join(SEARCH_SPACES)})")
    return SEARCH_SPACES[name]


def points_to_evaluate(name: str) -> list[dict]:
    """Configurations the study evaluates first."""
    return list(sys.modules[get_space(name).__module__].POINTS_TO_EVALUATE)


def profile_hints(name: str) -> dict:
    """Sizes the study prefers per profile (module attribute ``PROFILE_HINTS``, default none)."""
    return dict(getattr(sys.modules[get_space(name).__module__], "PROFILE_HINTS", {}))


def ladder_axes(name: str) -> tuple[str, ...]:
    """The study's ladder axes (module attribute ``LADDER_AXES``): the scientific hyperparameters whose every value is
    a row of the ladder (``trainables.ladder``); none: the study gives one row, its best config."""
    return tuple(getattr(sys.modules[get_space(name).__module__], "LADDER_AXES", ()))


def ladder_group(name: str) -> str:
    """The heading the study's rows go under in the ladder's table (module attribute ``LADDER_GROUP``; default: the
    study's name)."""
    return str(getattr(sys.modules[get_space(name).__module__], "LADDER_GROUP", name))


def scientific_parameter(name: str) -> str:
    """The hyperparameter the study asks about (for isolation plots)."""
    return sys.modules[get_space(name).__module__].SCIENTIFIC
