"""How long a study still takes: its pace, measured from the epochs run so far, and what remains.

Pure functions over what the trials reported (Ray's results: ``training_iteration``,
``time_this_iter_s``, ``time_total_s``), used by the live display's ETA and by
``--time-budget`` to decide whether a new trial still fits.

A trial's wall time is its epochs plus a fixed cost (worker start, model build,
the first epoch's warm-up, logging): the pace has both, and a slot (one of the
``concurrency`` trials at once) runs one trial at a time. One-step fits (ridge
readouts, lookups) are all fixed cost: their pace is measured once trials end.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from trainables.study.result import epoch_of


@dataclass(frozen=True)
class Pace:
    """Seconds an epoch takes in a slot, and seconds a trial costs besides its epochs."""

    epoch_s: float
    trial_s: float

    def trial(self, epochs: float) -> float:
        """Seconds one trial of ``epochs`` epochs holds a slot."""
        return self.trial_s + epochs * self.epoch_s


def measure(trials: list[tuple[int, float, float]]) -> Pace | None:
    """The pace from what the trials ran so far; None before any trial has reported.

    Parameters
    ----------
    trials : list of (epochs run, seconds of the last epoch, wall seconds from start to last result)
        One per trial that has reported. The first epoch also holds the trial's set-up, so the epoch time is
        read from trials past it; until one is, each epoch counts its share of the wall time.
    """
    trials = [t for t in trials if t[0] >= 1]
    if not trials:
        return None
    later = [last for epochs, last, _ in trials if epochs >= 2 and last > 0]
    if not later:
        return Pace(statistics.median(wall / epochs for epochs, _, wall in trials), 0.0)
    epoch_s = statistics.median(later)
    return Pace(epoch_s, statistics.median(max(wall - epochs * epoch_s, 0.0) for epochs, _, wall in trials))


def leader_paces(completed: list[dict], metric: str) -> list[Pace]:
    """The paces of trials that completed their fit, best ``metric`` first, from their last results: the re-check
    trains the best configs again to their end, so its first round takes about as long as they did."""
    ranked = sorted((r for r in completed if r.get(metric) is not None), key=lambda r: r[metric], reverse=True)
    paces = (measure([(epoch_of(r), r.get("time_this_iter_s", 0.0), r.get("time_total_s", 0.0))]) for r in ranked)
    return [p for p in paces if p is not None]



def makespan(running_s: list[float], queued_s: list[float], concurrency: int) -> float:
    """Seconds until every run ends: the running runs end after their seconds left, and each queued run (in order)
    takes the first of the ``concurrency`` slots that frees up."""
    slots = sorted(running_s[:concurrency] + [0.0] * (max(1, concurrency) - len(running_s)))
    for seconds in queued_s:
        slots[0] += seconds
        slots.sort()
    return max(slots)


def race_s(pace: Pace, configs: int, epochs: float, concurrency: int, leaders: list[Pace] = ()) -> float:
    """Seconds one re-check round of ``configs`` runs of ``epochs`` takes, ``concurrency`` at a time: the runs of
    ``leaders`` (the paces of the best configs so far, best first) each at its own pace, the others at ``pace``."""
    own = list(leaders)[:configs]
    return makespan([], [p.trial(epochs) for p in own] + [pace.trial(epochs)] * (configs - len(own)), concurrency)


@dataclass(frozen=True)
class Budget:
    """A run's time budget (``--time-budget``): a new trial starts only when it, and a first re-check round after it,
    still end before ``deadline`` (``time.time()`` seconds).

    Attributes
    ----------
    deadline : float
    epochs_per_trial : float
        Epochs a search trial runs on average (the scheduler's expectation).
    max_epochs : int
        Epochs of a run to its end (each re-check run).
    recheck_top : int
        Configs in the re-check's first round (0: no re-check).
    concurrency : int
    closing_s : float
        What the end of a study takes after its last trial (export, tracking, shutting Ray down).
    """

    deadline: float
    epochs_per_trial: float
    max_epochs: int
    recheck_top: int
    concurrency: int
    closing_s: float = 15.0

    def fits_trial(self, pace: Pace, now: float, leaders: list[Pace] = ()) -> bool:
        """Whether a search trial started ``now`` ends, with the re-check's first round (``leaders``: see
        :func:`race_s`) and the closing after it, in time."""
        end = now + pace.trial(self.epochs_per_trial) + self.round_s(pace, self.recheck_top, leaders) + self.closing_s
        return end <= self.deadline

    def fits_run(self, pace: Pace, now: float) -> bool:
        """Whether a re-check run of ``pace`` started ``now`` ends, with the closing after it, in time."""
        return now + pace.trial(self.max_epochs) + self.closing_s <= self.deadline

    def round_s(self, pace: Pace, configs: int, leaders: list[Pace] = ()) -> float:
        return race_s(pace, configs, self.max_epochs, self.concurrency, leaders) if configs else 0.0


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``1h30m`` or plain seconds -> seconds; ValueError otherwise."""
    units, total, number = {"h": 3600, "m": 60, "s": 1}, 0.0, ""
    for char in text.strip().lower():
        if char.isdigit() or char == ".":
            number += char
        elif char in units and number:
            total, number = total + float(number) * units[char], ""
        else:
            raise ValueError(f"{text!r} is not a duration (e.g. 90s, 30m, 2h, 1h30m)")
    if number:
        total += float(number)
    if total <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return total


def minutes(seconds: float) -> str:
    """``45 s``, ``3.2 min``, ``1 h 05 min``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
