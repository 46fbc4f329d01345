"""What each trial asks Ray for, and how many trials run at once.

Concurrency respects host memory as well as CPUs and GPUs: every trial reserves
with Ray the memory its own config needs (its family's estimate,
:attr:`trainables.fitting.family.Family.memory_bytes`), so a node never runs more
trials than its memory holds. The images are not counted: a search puts them in
Ray's object store once and every trial reads that shared copy.
"""

from __future__ import annotations

import os

import torch

from trainables.core.usage import UsageError
from trainables.fitting.families import config_of, get_family
from trainables.fitting.family import DataShape
from trainables.study.plan.search_plan import ResourcePlan

GIB = 1024**3
# Requests are rounded up to this step: Ray reuses a trial's worker for the next trial only when their requests are
# equal, and configs that differ a little (a wider head, a width multiplier) should share workers.
MEMORY_STEP = GIB // 8


class TrialResources:
    """Called by Ray Tune with a trial's config (``tune.with_resources``): its CPUs, GPUs and memory.

    Parameters
    ----------
    plan : ResourcePlan
        CPUs and GPUs per trial; ``memory_per_trial_gib`` replaces the estimate when set.
    shape : DataShape
        The data set's sizes, for the estimate.
    """

    def __init__(self, plan: ResourcePlan, shape: DataShape):
        self.plan, self.shape = plan, shape

    def memory(self, config: dict) -> int:
        """Bytes of host memory a trial of ``config`` reserves (its family's estimate, rounded up to
        :data:`MEMORY_STEP`)."""
        if self.plan.memory_per_trial_gib:
            return int(self.plan.memory_per_trial_gib * GIB)
        config = config_of(config)
        need = get_family(config["model"]).memory_bytes(config, self.shape, self.plan.gpus_per_trial > 0)
        return -(-need // MEMORY_STEP) * MEMORY_STEP

    def __call__(self, config: dict) -> dict:
        return {"cpu": self.plan.cpus_per_trial, "gpu": self.plan.gpus_per_trial, "memory": self.memory(config)}


def check_this_machine(plan: ResourcePlan) -> None:
    """Refuse, before Ray starts, a request that a private Ray instance on this machine can never satisfy.

    Ray counts at most ``os.cpu_count()`` CPUs on a machine and no GPU that torch cannot see; a cluster's nodes are
    checked by :func:`concurrency` once the search has joined it.

    Raises
    ------
    UsageError
        ``--cpus-per-trial`` above this machine's CPUs, or ``--gpus-per-trial`` above its GPUs.
    """
    cpus, gpus = os.cpu_count() or 1, torch.cuda.device_count()
    if plan.cpus_per_trial > cpus:
        raise UsageError(f"--cpus-per-trial {plan.cpus_per_trial:g}: this machine has {cpus} CPU" + "s" * (cpus != 1))
    if plan.gpus_per_trial > gpus:
        raise UsageError(f"--gpus-per-trial {plan.gpus_per_trial:g}: " + (
            f"this machine has {gpus} GPU" + "s" * (gpus != 1) if gpus else "this machine has no GPU"))


def concurrency(resources: TrialResources, configs: list[dict]) -> int:
    """Trials at once: the plan's ``max_concurrent``, else as many as the cluster's CPUs, GPUs and memory allow.

    ``configs`` are what the space can produce (the probe's sample). Memory is Ray's
    ``memory`` resource (what a node offers to tasks, the object store holding the
    shared images excluded).

    Raises
    ------
    UsageError
        A trial would need more memory, CPUs or GPUs than any node of the cluster has.
    """
    import ray  # only here: the launcher imports this module before Ray's environment is set

    needs = [resources.memory(c) for c in configs]
    least, most = min(needs), max(needs)
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    largest = max((n.get("memory", 0) for n in nodes), default=0)
    if largest and most > largest:
        raise UsageError(f"a trial of this search may need about {most / GIB:.1f} GiB of host memory, the largest Ray "
                         f"node offers {largest / GIB:.1f} GiB (set --memory-per-trial to override the estimate)")
    plan = resources.plan
    cpus = max((n.get("CPU", 0) for n in nodes), default=0)
    if plan.cpus_per_trial > cpus:
        raise UsageError(f"--cpus-per-trial {plan.cpus_per_trial:g}: the largest Ray node has {cpus:g} CPU"
                         + "s" * (cpus != 1))
    gpus = max((n.get("GPU", 0) for n in nodes), default=0)
    if plan.gpus_per_trial > gpus:
        raise UsageError(f"--gpus-per-trial {plan.gpus_per_trial:g}: " + (
            f"the largest Ray node has {gpus:g} GPU" + "s" * (gpus != 1) if gpus else "the Ray cluster has no GPU"))
    if plan.max_concurrent:
        return plan.max_concurrent
    total = ray.cluster_resources()
    fits = [int(total.get("CPU", 1) // plan.cpus_per_trial)]
    if plan.gpus_per_trial > 0:
        fits.append(int(total.get("GPU", 0) // plan.gpus_per_trial))
    if total.get("memory"):  # each trial reserves its own need; this bounds how many Optuna keeps pending
        fits.append(int(total["memory"] // least))
    return max(1, min(fits))


def memory_range(resources: TrialResources, configs: list[dict]) -> tuple[int, int]:
    """Smallest and largest memory request among ``configs`` (bytes)."""
    needs = [resources.memory(c) for c in configs]
    return min(needs), max(needs)
