"""What one run of a study is given besides its plan: never saved, so a resume can give other values.

A study's decisions live in its plan (:mod:`trainables.study.plan.search_plan`,
``search.json``); how this process runs them (its time budget, the cluster it
joined, whether trials reuse their workers) is a :class:`RunOptions`, given anew
to every run, the way Ray Tune keeps ``TuneConfig`` apart from ``RunConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunOptions:
    """One run's options.

    Attributes
    ----------
    deadline : float or None
        ``time.time()`` by which the run ends (``--time-budget``): no trial or re-check round starts that would not
        end in time. None: no budget.
    address : str or None
        The Ray cluster joined (``--address``); None: a private instance on this machine.
    reuse_workers : bool
        A trial's worker runs the next trial that asks for the same resources: no new process, no imports again.
    """

    deadline: float | None = None
    address: str | None = None
    reuse_workers: bool = True
