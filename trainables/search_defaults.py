"""The search's default strategy: searcher, scheduler and where ASHA judges trials.

Chosen by replaying every strategy on a recorded table of full learning curves
(``python benchmarks/search_replay.py run``; README "How the defaults were chosen",
``benchmarks/RESULTS.md`` for the numbers). The grace period is a fraction of the
longest recipe rather than a number of epochs, so that the replay's choice carries
from the CPU profile (recipes capped at 8-16 epochs) to report scale (60 epochs).
"""

from __future__ import annotations

SEARCHER = "tpe"
SCHEDULER = "asha"
GRACE_FRACTION = 0.25  # of the longest recipe's epochs
REDUCTION_FACTOR = 2.0


def grace_period(max_t: int) -> int:
    """The default grace period for recipes of at most ``max_t`` epochs: :data:`GRACE_FRACTION` of it, at least 1."""
    return max(1, round(max_t * GRACE_FRACTION))
