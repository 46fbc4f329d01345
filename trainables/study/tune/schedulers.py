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

The search's re-check runs (in slots its last trials leave free) are never judged
(:mod:`trainables.study.tune.asha`).
"""

from __future__ import annotations

import math
from typing import Callable

from trainables.study.plan.search_plan import SchedulerPlan

# Ray's schedulers are imported where they are built: the search names its schedulers (--scheduler's choices)
# before it sets the environment Ray reads when first imported (trainables.study.run.cluster).


def _asha(plan: SchedulerPlan, brackets: int = 1):
    from trainables.study.tune.asha import SearchASHA  # see above: not before Ray's environment is set

    return SearchASHA(time_attr="training_iteration", max_t=plan.max_t, grace_period=min(plan.grace_period, plan.max_t),
                      reduction_factor=plan.reduction_factor, brackets=brackets)


def _hyperband(plan: SchedulerPlan):
    return _asha(plan, brackets=hyperband_brackets(plan))


def _fifo(plan: SchedulerPlan):
    from ray.tune.schedulers import FIFOScheduler  # see above: not before Ray's environment is set

    return FIFOScheduler()


# name -> builder of a ray.tune.schedulers.TrialScheduler
SCHEDULERS: dict[str, Callable[[SchedulerPlan], object]] = {"asha": _asha, "hyperband": _hyperband, "fifo": _fifo}


def make_trial_scheduler(plan: SchedulerPlan):
    """The Ray Tune scheduler ``plan.name`` names; ValueError listing the registry otherwise."""
    if plan.name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler '{plan.name}' (valid: {', '.join(SCHEDULERS)})")
    return SCHEDULERS[plan.name](plan)


def rungs(grace: float, reduction: float, max_t: int) -> list[int]:
    """Epochs at which one ASHA bracket judges its trials: ``grace * reduction^k`` below ``max_t``.

    As Ray's ``AsyncHyperBandScheduler`` places them (milestones ``grace * reduction^k``, a trial judged at
    the first epoch that reaches one); a rung at ``max_t`` judges nothing, as every trial stops there.
    """
    grace = min(grace, max_t)
    count = int(math.log(max_t / grace, reduction) + 1e-9) + 1
    at = {math.ceil(grace * reduction**k - 1e-9) for k in range(count)}
    return sorted(e for e in at if e < max_t)


def hyperband_brackets(plan: SchedulerPlan) -> int:
    """As many brackets as there are rungs (each bracket's grace is ``rf`` times the previous one's), at least one."""
    return max(1, len(rungs(plan.grace_period, plan.reduction_factor, plan.max_t)))


def describe(plan: SchedulerPlan) -> str:
    """One line for the start of a search: the scheduler, where it judges trials, how many reach the end."""
    name, max_t = plan.name, plan.max_t
    if name == "fifo":
        return f"scheduler fifo: no early stopping, every trial runs to its own end (at most {max_t} epochs)"
    grace, rf = plan.grace_period, plan.reduction_factor
    brackets = 1 if name == "asha" else hyperband_brackets(plan)
    parts = []
    for b in range(brackets):
        at = rungs(min(grace, max_t) * rf**b, rf, max_t)
        reach = f"about 1 in {rf ** len(at):.0f} reaches {max_t}" if at else f"every trial reaches {max_t}"
        parts.append(f"rungs at epochs {', '.join(map(str, at)) or 'none'} ({reach})")
    head = f"scheduler {name} (grace {grace}, reduction {rf:g}"
    head += f", {brackets} brackets): " if brackets > 1 else "): "
    return head + "; ".join(parts)


def expected_epochs(plan: SchedulerPlan, recipe_epochs: int | None = None) -> float:
    """Epochs a trial runs on average under the scheduler, when every config runs to the recipe's end unless stopped.

    ASHA keeps ``1 / rf`` of the trials at each rung, so the share that passes rung ``k`` is ``rf^-k``; Hyperband
    averages its brackets. Early stopping on the inner-validation EV (``patience``) can only shorten this.
    """
    max_t = min(plan.max_t, recipe_epochs or plan.max_t)
    if plan.name == "fifo":
        return float(max_t)
    brackets = 1 if plan.name == "asha" else hyperband_brackets(plan)
    total = 0.0
    for b in range(brackets):
        at = rungs(min(plan.grace_period, plan.max_t) * plan.reduction_factor**b, plan.reduction_factor, plan.max_t)
        edges = [0, *[e for e in at if e < max_t], max_t]
        total += sum((edges[k + 1] - edges[k]) * plan.reduction_factor ** -k for k in range(len(edges) - 1))
    return total / brackets
