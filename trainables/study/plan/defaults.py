"""The search's default strategy: searcher, scheduler, where ASHA judges trials, and the re-check's seeds.

Chosen by replaying strategies on a recorded table of full learning curves
(``python benchmarks/search_replay.py run``; ``benchmarks/RESULTS.md``, "Search
replay"). The grace period is a fraction of the longest recipe rather than a number
of epochs, so that the choice carries from the CPU profile (recipes capped at 6-16
epochs) to report scale (60 epochs).
"""

from __future__ import annotations

# Quasi-random search with ASHA (grace 1/8 of the longest recipe, reduction 3): on the replay table it brings the
# export's median regret within 0.01 EV of the table's best in 0.44 of the epochs random search without early
# stopping needs, samples the best config in every replay and never stops its first sample early.
SAMPLER = "qmc"
SCHEDULER = "asha"
GRACE_FRACTION = 0.125  # of the longest recipe's epochs (8 of 60)
# ...but never before epoch 2: after one epoch the inner EV is mostly noise, and slow starters (a low learning rate,
# a 7000-7000 head) score near zero there (RESULTS.md, "Grace period").
MIN_GRACE = 2
REDUCTION_FACTOR = 3.0
# Re-check of a resumed study that had none: at most this many new seeds per config (a standard error needs two);
# a new study takes its profile's (trainables.study.plan.profiles).
RECHECK_SEEDS = 3


def grace_period(max_t: int) -> int:
    """The default grace period for recipes of at most ``max_t`` epochs.

    :data:`GRACE_FRACTION` of ``max_t``, at least :data:`MIN_GRACE` epochs, at most ``max_t``.
    """
    return min(max_t, max(MIN_GRACE, round(max_t * GRACE_FRACTION)))
