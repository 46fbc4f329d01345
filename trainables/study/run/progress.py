"""The live display of a study: one compact table of its trials and the time left.

Replaces Ray Tune's status table (which scrolls every few seconds with columns of its
own): every ``interval_s`` seconds, and whenever a trial ends, one block is logged:

    search vgg_depth: 6 of 10 trials started, 2 running, 4 ended (1 completed, 3 pruned); 3.1 min so far;
    about 2.4 min left for the search, then the re-check: 0.9 to 2.6 min (racing: 3 to 9 runs)
      trial     state      epoch  inner EV    best  vgg_blocks
      1bf85659  RUNNING      3/8    0.1441  0.1441  7
      ...

The estimate comes from the pace the trials have shown so far (:mod:`trainables.study.plan.pace`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

from ray.tune import ProgressReporter

from trainables.core.layout import RECHECK_KEY
from trainables.study.plan.pace import Pace, leader_paces, makespan, measure, minutes, race_s
from trainables.study.result import OBJECTIVE, epoch_of, fit_done

log = logging.getLogger("trainables.progress")
SHOWN_ENDED = 4  # ended trials shown besides the running ones: the best few


@dataclass
class Phase:
    """What the display needs to know of a Tuner's phase.

    Attributes
    ----------
    title : str
        ``search vgg_depth`` or ``re-check round 2``.
    scientific : str
        The study's scientific hyperparameter (a column).
    total : int
        Trials the phase runs.
    epochs_per_trial : float
        Epochs a trial runs on average (the scheduler's expectation).
    max_epochs : int
        Epochs of a trial that runs to its end.
    concurrency : int
    recheck : tuple of (K, S) or None
        The re-check to come after the search (its time is added to the estimate).
    paces : dict or None
        A phase of fixed runs' (a re-check round, final trainings): each run's own pace, by the value of its config's
        ``pace_key`` (a re-check round: search trial id -> :class:`~trainables.study.plan.pace.Pace`,
        :func:`~trainables.study.recheck.rounds.config_paces`); its runs' time left is read from them.
    pace_key : str
        The config key ``paces`` go by.
    scores : tuple of (column, result key)
        The scores shown per trial: a search's inner EV and its best so far; a final training's validation EV.
    column : str or None
        The last column's heading (default: ``scientific``, the config key it shows).
    """

    title: str
    scientific: str
    total: int
    epochs_per_trial: float
    max_epochs: int
    concurrency: int
    recheck: tuple | None = None
    paces: dict | None = None
    pace_key: str = RECHECK_KEY
    scores: tuple = (("inner EV", "inner_ev"), ("best", OBJECTIVE))
    column: str | None = None


class StudyProgress(ProgressReporter):
    """Ray Tune progress reporter of a study phase: a compact table and the ETA, through logging."""

    def __init__(self, phase: Phase, observed: Callable[[], list] | None = None, interval_s: float = 30.0):
        self.phase, self.observed, self.interval_s = phase, observed, interval_s
        self.started = time.time()
        self.last = 0.0
        self.ended = -1
        self.shown: list[str] = []

    def setup(self, start_time=None, total_samples=None, metric=None, mode=None, **kwargs):
        self.started = start_time or self.started

    def should_report(self, trials, done: bool = False) -> bool:
        ended = sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        now = time.time()
        due = done or now - self.last >= self.interval_s or (ended != self.ended and now - self.last >= 5)
        return due and any(t.status != "PENDING" for t in trials)

    def report(self, trials, done: bool, *sys_info) -> None:
        self.last, self.ended = time.time(), sum(t.status in ("TERMINATED", "ERROR") for t in trials)
        lines = self.lines(trials)
        if lines[1:] != self.shown[1:]:  # Tune asks again at the very end; the same table once is enough
            log.info("%s", "\n".join(lines))
        self.shown = lines

    def pace(self, trials) -> Pace | None:
        """The pace: the searcher's own observations (from a trial's suggestion on) where it has them, else Ray's
        (from a trial's start, which misses its worker's start)."""
        seen = self.observed() if self.observed else []
        if seen:
            return measure(seen)
        for t in _split(trials)[0]:  # a re-check run runs to its end: the search's pace is its trials'
            r, start = t.last_result or {}, t.run_metadata.start_time
            if r.get("training_iteration") and start and t.run_metadata.last_result_time:
                seen.append((r["training_iteration"], r.get("time_this_iter_s", 0.0),
                             t.run_metadata.last_result_time - start))
        return measure(seen)

    def eta(self, trials) -> str:
        """``about 2.4 min left for the search, then ...``; empty before the first epochs."""
        if self.phase.paces is not None:
            return self.round_eta(trials)
        p, pace = self.phase, self.pace(trials)
        if pace is None:
            return ""
        search, early = _split(trials)
        running = [max(p.epochs_per_trial - epoch_of(t.last_result or {}), 0.0) * pace.epoch_s
                   for t in search if t.status == "RUNNING"]
        # A re-check run holds its slot to its end (_run_left_s); its config's pace is the search trial's it repeats.
        origins = {t.trial_id: t for t in search}
        queued = [pace.trial(p.epochs_per_trial)] * (max(p.total - len(search), 0)
                                                     + sum(t.status == "PENDING" for t in search))
        for t in early:
            origin = origins.get(t.config[RECHECK_KEY])
            own = ((leader_paces([origin.last_result or {}], OBJECTIVE) if origin else []) or [pace])[0]
            if t.status == "RUNNING" and (t.last_result or {}).get("training_iteration"):
                running.append(_run_left_s(t, own, p.max_epochs))
            elif t.status in ("RUNNING", "PENDING"):
                queued.insert(0, own.trial(p.max_epochs))
        left = makespan(running, queued, p.concurrency)
        text = f"about {minutes(left)} left"
        if p.recheck:
            top, seeds = p.recheck
            # The first round's runs the free slots took are in the search's time already.
            ahead = {t.config[RECHECK_KEY] for t in early if t.status != "ERROR"}  # a failed run runs again
            done = [t for t in search if t.status == "TERMINATED" and fit_done(t.last_result)]
            least = race_s(pace, max(top - len(ahead), 0), p.max_epochs, p.concurrency,
                           leader_paces([t.last_result for t in done if t.trial_id not in ahead], OBJECTIVE))
            most = least + (seeds - 1) * race_s(pace, top, p.max_epochs, p.concurrency,
                                                leader_paces([t.last_result for t in done], OBJECTIVE))
            text += (f" for the search, then the re-check: {minutes(least)} to {minutes(most)} "
                     f"(racing: {top} to {top * seeds} runs)")
        return text

    def round_eta(self, trials) -> str:
        """``about 70 s left`` in a re-check round: a running run's epochs left at its own pace once it has timed an
        epoch past its first (else at its config's), each run still to start as long as its config's runs took."""
        p = self.phase
        running, queued, seen = [], [], set()
        for t in trials:
            key, r = t.config.get(p.pace_key), t.last_result or {}
            seen.add(key)
            own = p.paces.get(key)
            if own is None:
                return ""
            if t.status == "RUNNING" and r.get("training_iteration"):
                running.append(_run_left_s(t, own, p.max_epochs))
            elif t.status in ("RUNNING", "PENDING"):
                queued.append(own.trial(p.max_epochs))
        queued += [pace.trial(p.max_epochs) for key, pace in p.paces.items() if key not in seen]
        return f"about {minutes(makespan(running, queued, p.concurrency))} left"

    def lines(self, trials) -> list[str]:
        p = self.phase
        search, early = _split(trials) if p.paces is None else (trials, [])
        ended = [t for t in search if t.status in ("TERMINATED", "ERROR")]
        running = [t for t in search if t.status == "RUNNING"]
        completed = sum(fit_done(t.last_result) for t in ended if t.status == "TERMINATED")
        failed = sum(t.status == "ERROR" for t in ended)
        head = (f"{p.title}: {len(search) - sum(t.status == 'PENDING' for t in search)} of {p.total} trials started, "
                f"{len(running)} running, {len(ended)} ended ({completed} completed, "
                f"{len(ended) - completed - failed} stopped early, {failed} failed); "
                + (f"re-check round 1: {len(early)} run{'s' * (len(early) > 1)} in its slots; " if early else "")
                + f"{minutes(time.time() - self.started)} so far")
        eta = self.eta(trials)
        rows = [f"  {'trial':<10}{'state':<10}{'epoch':>7}" + "".join(f"{name:>10}" for name, _ in p.scores)
                + f"  {p.column or p.scientific}"]
        rank = p.scores[-1][1]  # the ended trials shown: the best few by the last score
        best = sorted(ended, key=lambda t: (t.last_result or {}).get(rank, float("-inf")), reverse=True)
        for t in running + [t for t in early if t.status == "RUNNING"] + best[:SHOWN_ENDED]:
            r = t.last_result or {}
            state = ("RE-CHECK" if t in early else "RUNNING") if t.status == "RUNNING" else "FAILED" if (
                t.status == "ERROR") else ("COMPLETED" if fit_done(r) else "STOPPED")
            epoch = f"{epoch_of(r) if r.get('training_iteration') else 0}/{p.max_epochs}"
            scores = "".join(f"{_f(r.get(key)):>10}" for _, key in p.scores)
            rows.append(f"  {t.trial_id:<10}{state:<10}{epoch:>7}{scores}  {_value(t.config.get(p.scientific, ''))}")
        if len(ended) > SHOWN_ENDED:
            rows.append(f"  ... and {len(ended) - SHOWN_ENDED} more ended")
        return [head + (f"; {eta}" if eta else "")] + rows


def _run_left_s(trial, own: Pace, max_epochs: int) -> float:
    """Seconds a running re-check run still holds its slot: its epochs left at its own pace once it has timed an epoch
    past its first (the first also holds its set-up), else at ``own``, its config's."""
    r = trial.last_result or {}
    epoch_s = r.get("time_this_iter_s", own.epoch_s) if r.get("training_iteration", 0) >= 2 else own.epoch_s
    return max(max_epochs - epoch_of(r), 0) * epoch_s


def _split(trials) -> tuple[list, list]:
    """A search's trials, and the re-check runs its free slots took."""
    return ([t for t in trials if RECHECK_KEY not in t.config], [t for t in trials if RECHECK_KEY in t.config])


def _value(x) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _f(x) -> str:
    return "" if x is None else f"{x:.4f}"
