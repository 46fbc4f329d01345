"""Top-K re-check: is the search's best configuration really the best?

The winner of a search is the maximum of many noisy single-seed scores on a small
inner split, so its score is biased upward (the winner's curse) and the runner-up
is often as good. The re-check takes the K best search trials
(:func:`top_candidates`) and asks, for each, how far its score would move with
another seed and with other inner-validation images; the export then takes the
best mean, not the best single run.

Two sources of error, one rule for every family:

- **seeds** (networks): a configuration's re-check runs use seeds ``base + 1 ...
  base + S``. The seed variance is pooled over the K configurations, from their
  re-check runs and their completed search run (the search run enters the
  variance, never the mean: it was selected for being high).
- **images**: every trial keeps what EV needs of its inner-split predictions,
  summed per object (:func:`trainables.core.metrics.object_sums`). A paired
  bootstrap over the inner split's objects (the same resampled objects for every
  configuration) gives each configuration's image-sampling error and that of the
  difference between two.

The standard error of a difference is ``sqrt(pooled variance * (1/n_a + 1/n_b) +
bootstrap variance of the difference)``. **Racing rule**: the configs get their
seeds one round at a time; after each round, a config whose mean lies more than
:data:`TIE_SES` standard errors of the difference below the leader's leaves the
race; the race ends when one config is left or every config still in has its S
seeds. A clear winner thus costs K runs (one round), a tie all K x S. The first
round runs in the search's own slots as they free up
(:class:`~trainables.study.tune.searchers.FreeSlots`); a round brings each config still
in to one run more than the fewest any of them has, so a config those slots could
not start gets its first run alone.
Deterministic families (ridge readouts, lookups: a seed changes nothing) run no
seeds: their search runs are compared by the bootstrap alone. #1 and #2 **tie**
when #1's lead is within :data:`TIE_SES` standard errors of their difference.

Re-check trials are trials of the same study: Ray trial folders beside the search's
(round 1) and under ``<study>/recheck/`` (later rounds), Optuna trials of the same study (user attributes
``recheck_of`` and ``seed``), MLflow runs under the same parent run (tag
``recheck_of``); their configs carry :data:`~trainables.core.layout.RECHECK_KEY`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from trainables.core.layout import RECHECK_KEY
from trainables.core.metrics import BOOTSTRAP_RESAMPLES, ObjectSums, explained_variance_of_objects, resample_counts
from trainables.fitting.families import get_family
from trainables.study.records.trials import TrialRecord, search_trials
from trainables.study.result import OBJECTIVE

# Two configurations tie when their means differ by less than this many standard errors of the difference.
TIE_SES = 2.0


@dataclass
class RecheckRow:
    """One re-checked configuration.

    Attributes
    ----------
    trial : TrialRecord
        The search trial whose configuration was re-checked.
    search_value : float
        Its score in the search (single seed, selected: biased upward).
    values : list of float
        The re-check seeds' scores (best inner-validation EV of each); empty for a deterministic family.
    deterministic : bool
        A family whose fit a seed does not change: its mean is its search score.
    seed_se, image_se : float
        Standard error of the mean from the seeds (pooled variance / n; 0 when deterministic) and from the
        inner-validation images (bootstrap; NaN without the trials' per-object sums).
    diff_se : float
        Standard error of the difference to the leader (row 0); NaN for the leader itself.
    out : bool
        Left the race: clearly below the leader.
    """

    trial: TrialRecord
    search_value: float
    values: list = field(default_factory=list)
    deterministic: bool = False
    seed_se: float = math.nan
    image_se: float = math.nan
    diff_se: float = math.nan
    out: bool = False

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        if self.deterministic:
            return self.search_value
        return sum(self.values) / self.n if self.values else math.nan

    @property
    def se(self) -> float:
        """Standard error of the mean, seeds and images together."""
        parts = [x for x in (self.seed_se, self.image_se) if not math.isnan(x)]
        return math.sqrt(sum(x * x for x in parts)) if parts else math.nan

    def as_dict(self) -> dict:
        return {"trial_id": self.trial.trial_id, "search_value": self.search_value, "mean": self.mean, "se": self.se,
                "seed_se": self.seed_se, "image_se": self.image_se, "n": self.n, "values": list(self.values),
                "deterministic": self.deterministic, "out": self.out}


def top_candidates(trials: list[TrialRecord], k: int) -> list[TrialRecord]:
    """The ``k`` search trials to re-check: the completed ones by their (single-seed) objective, best first; when
    fewer than ``k`` completed (a short search under aggressive early stopping), then those stopped early that went
    furthest, by epochs reached and score, as successive halving would have promoted them."""
    scored = [t for t in search_trials(trials) if t.status in ("completed", "pruned") and t.best(OBJECTIVE) is not None]
    return sorted(scored, key=lambda t: (t.status == "completed", 0 if t.status == "completed" else t.epochs,
                                         t.best(OBJECTIVE)), reverse=True)[:k]


def is_deterministic(config: dict) -> bool:
    """Whether the family of a trial's Ray config gives the same fit for every seed."""
    return get_family(config["model"]).deterministic


def pooled_variance(groups: list[list[float]]) -> float:
    """Within-group variance pooled over groups (each group: one configuration's runs); NaN without a degree of
    freedom."""
    dof = sum(len(g) - 1 for g in groups if len(g) > 1)
    if not dof:
        return math.nan
    return sum(sum((v - sum(g) / len(g)) ** 2 for v in g) for g in groups if len(g) > 1) / dof


def bootstrap(evidence: list[list[ObjectSums]], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> np.ndarray | None:
    """Paired bootstrap over inner-validation objects of each configuration's EV.

    Parameters
    ----------
    evidence : list (one per configuration) of lists (one per run) of ObjectSums
        A configuration with several runs scores the mean of their EVs.
    resamples : int
    seed : int

    Returns
    -------
    array, shape (resamples, n_configurations), or None
        None when a configuration has no per-object sums (older trials).
    """
    if not evidence or any(not runs for runs in evidence):
        return None
    names = sorted(set.intersection(*(set(map(str, s["objects"])) for runs in evidence for s in runs)))
    if len(names) < 2:
        return None
    counts = resample_counts(len(names), resamples, seed)
    columns = []
    for runs in evidence:
        scores = []
        for sums in runs:
            where = {str(n): i for i, n in enumerate(sums["objects"])}
            weights = np.zeros((resamples, len(sums["objects"])))
            weights[:, [where[n] for n in names]] = counts
            scores.append(explained_variance_of_objects(sums, weights))
        columns.append(np.mean(scores, axis=0))
    return np.stack(columns, axis=1)


def _std(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1))


def race_table(trials: list[TrialRecord], top: int) -> list[RecheckRow]:
    """The K best configs with their re-check runs so far, best mean first, each marked in or out of the race.

    Empty when ``top`` is 0.
    """
    candidates = top_candidates(trials, top)
    if not candidates:
        return []
    runs: dict[str, list[TrialRecord]] = {t.trial_id: [] for t in candidates}
    for t in trials:
        if t.config.get(RECHECK_KEY) in runs and t.status == "completed" and t.best(OBJECTIVE) is not None:
            runs[t.config[RECHECK_KEY]].append(t)
    rows = [RecheckRow(t, t.best(OBJECTIVE), [r.best(OBJECTIVE) for r in runs[t.trial_id]],
                       is_deterministic(t.config))
            for t in candidates]
    # The search run enters the seed variance (not the mean) when it ran to its end like the re-check runs.
    pooled = pooled_variance([row.values + ([row.search_value] if row.trial.status == "completed" else [])
                              for row in rows if not row.deterministic])
    for row in rows:
        row.seed_se = 0.0 if row.deterministic else math.sqrt(pooled / row.n) if row.n and not math.isnan(pooled) \
            else math.nan
    own = [[t.evidence() for t in ([row.trial] if row.deterministic else runs[row.trial.trial_id])] for row in rows]
    boot = bootstrap([[e for e in runs_ if e is not None] for runs_ in own])
    if boot is not None:
        for i, row in enumerate(rows):
            row.image_se = _std(boot[:, i])
    order = sorted(range(len(rows)), key=lambda i: (not math.isnan(rows[i].mean), rows[i].mean), reverse=True)
    rows, boot = [rows[i] for i in order], None if boot is None else boot[:, order]
    leader = rows[0]
    for i, row in enumerate(rows[1:], 1):
        seed_part = 0.0 if row.deterministic else pooled * (1 / max(leader.n, 1) + 1 / max(row.n, 1))
        image_part = _std(boot[:, 0] - boot[:, i]) ** 2 if boot is not None else 0.0
        row.diff_se = math.sqrt(seed_part + image_part) if not math.isnan(seed_part) else math.nan
        row.out = (row.n > 0 or row.deterministic) and not math.isnan(row.diff_se) and (
            leader.mean - row.mean > TIE_SES * row.diff_se)
    return rows


def recheck_table(trials: list[TrialRecord], top: int | None = None) -> list[RecheckRow]:
    """The re-check's table of a study, best mean first: empty when it ran none.

    ``top``: the K of the re-check (default: every search trial that was re-checked; for deterministic families,
    which run no re-check trials, pass the study's K).
    """
    if top is None:
        top = len({t.config[RECHECK_KEY] for t in trials if RECHECK_KEY in t.config})
    return race_table(trials, top) if top else []


def is_tie(first: RecheckRow, second: RecheckRow) -> bool:
    """Whether #1's lead over ``second`` is within :data:`TIE_SES` standard errors of their difference."""
    return math.isnan(second.diff_se) or first.mean - second.mean <= TIE_SES * second.diff_se


