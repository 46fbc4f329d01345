"""Trial schedulers by ``--scheduler`` name: when a search stops a trial early.

- ``asha``: asynchronous successive halving. A trial is judged at its rungs,
  ``grace * rf^k`` epochs below the longest recipe, and continues only if it is in
  the top ``1/rf`` of the trials that reached that rung.
- ``hyperband``: asynchronous Hyperband: several ASHA brackets, each with a
  ``rf`` times longer grace period than the one before, so slow starters (wide
  heads, low learning rates) also get judged late.
- ``fifo``: no early stopping: every trial runs to its own end (its epochs, or
  its early stopping on the inner-validation EV). The baseline the others save
  epochs against, and what a table of full learning curves is recorded with.
"""

from __future__ import annotations

import math
from typing import Callable

SCHEDULERS: dict[str, Callable[[dict], object]] = {}


def _asha(settings: dict, brackets: int = 1):
    from ray.tune.schedulers import AsyncHyperBandScheduler

    return AsyncHyperBandScheduler(time_attr="training_iteration", max_t=settings["max_t"],
                                   grace_period=min(settings["grace_period"], settings["max_t"]),
                                   reduction_factor=settings["reduction_factor"], brackets=brackets)


def _hyperband(settings: dict):
    return _asha(settings, brackets=hyperband_brackets(settings))


def _fifo(settings: dict):
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


SCHEDULERS.update(asha=_asha, hyperband=_hyperband, fifo=_fifo)


def make_scheduler(settings: dict):
    """The Ray Tune scheduler ``settings["scheduler"]`` names; ValueError listing the registry otherwise."""
    name = settings["scheduler"]
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler '{name}' (valid: {', '.join(SCHEDULERS)})")
    return SCHEDULERS[name](settings)


def rungs(grace: float, reduction: float, max_t: int) -> list[int]:
    """Epochs at which one ASHA bracket judges its trials: ``grace * reduction^k`` below ``max_t``.

    As Ray's ``AsyncHyperBandScheduler`` places them (milestones ``grace * reduction^k``, a trial judged at
    the first epoch that reaches one); a rung at ``max_t`` judges nothing, as every trial stops there.
    """
    grace = min(grace, max_t)
    count = int(math.log(max_t / grace, reduction) + 1e-9) + 1
    at = {math.ceil(grace * reduction**k - 1e-9) for k in range(count)}
    return sorted(e for e in at if e < max_t)


def hyperband_brackets(settings: dict) -> int:
    """As many brackets as there are rungs (each bracket's grace is ``rf`` times the previous one's), at least one."""
    return max(1, len(rungs(settings["grace_period"], settings["reduction_factor"], settings["max_t"])))


def describe(settings: dict) -> str:
    """One line for the start of a search: the scheduler, where it judges trials, how many reach the end."""
    name, max_t = settings["scheduler"], settings["max_t"]
    if name == "fifo":
        return f"scheduler fifo: no early stopping, every trial runs to its own end (at most {max_t} epochs)"
    grace, rf = settings["grace_period"], settings["reduction_factor"]
    brackets = 1 if name == "asha" else hyperband_brackets(settings)
    parts = []
    for b in range(brackets):
        at = rungs(min(grace, max_t) * rf**b, rf, max_t)
        reach = f"about 1 in {rf ** len(at):.0f} reaches {max_t}" if at else f"every trial reaches {max_t}"
        parts.append(f"rungs at epochs {', '.join(map(str, at)) or 'none'} ({reach})")
    head = f"scheduler {name} (grace {grace}, reduction {rf:g}"
    head += f", {brackets} brackets): " if brackets > 1 else "): "
    return head + "; ".join(parts)
