"""Top-K re-check: the K best configurations of a search trained again with S new seeds.

The winner of a search is the maximum of many noisy single-seed scores on a small
inner split, so its score is biased upward (the winner's curse) and the runner-up is
often as good. The re-check trains the K best completed configurations (topped up with
the furthest-reaching early-stopped ones when fewer completed) again with S seeds each (the search's seed + 1 ... + S; the search's own run is left out of the
mean, since it was selected for being high) and ranks them by their mean.

Re-check trials are trials of the same search: Ray trial folders under
``<search>/recheck/``, Optuna trials of the same study (user attributes
``recheck_of`` and ``seed``), MLflow runs under the same parent run (tag
``recheck_of``). Their configs carry :data:`RECHECK_KEY`: the trial id of the search
trial they repeat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainables.core.layout import OBJECTIVE, OPTUNA_KEY, RECHECK_KEY, sampled_params
from trainables.study.records import TrialRecord

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
        The re-check seeds' scores (best inner-validation EV of each).
    """

    trial: TrialRecord
    search_value: float
    values: list

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return sum(self.values) / self.n if self.values else math.nan

    @property
    def se(self) -> float:
        """Standard error of the mean (sample standard deviation / sqrt(n)); NaN below two seeds."""
        if self.n < 2:
            return math.nan
        var = sum((v - self.mean) ** 2 for v in self.values) / (self.n - 1)
        return math.sqrt(var / self.n)

    def as_dict(self) -> dict:
        return {"trial_id": self.trial.trial_id, "search_value": self.search_value, "mean": self.mean, "se": self.se,
                "n": self.n, "values": list(self.values)}


def search_trials(trials: list[TrialRecord]) -> list[TrialRecord]:
    """The trials the searcher chose (re-check trials left out)."""
    return [t for t in trials if RECHECK_KEY not in t.config]


def top_candidates(trials: list[TrialRecord], k: int) -> list[TrialRecord]:
    """The ``k`` search trials to re-check: the completed ones by their (single-seed) objective, best first; when
    fewer than ``k`` completed (a short search under aggressive early stopping), then those stopped early that went
    furthest, by epochs reached and score, as successive halving would have promoted them."""
    scored = [t for t in search_trials(trials) if t.status in ("completed", "pruned") and t.best(OBJECTIVE) is not None]
    return sorted(scored, key=lambda t: (t.status == "completed", 0 if t.status == "completed" else t.epochs,
                                         t.best(OBJECTIVE)), reverse=True)[:k]


def recheck_configs(trials: list[TrialRecord], top: int, seeds: int, base_seed: int) -> list[dict]:
    """Trial configs of the re-check still to run: each of the ``top`` best configs (:func:`top_candidates`) with seeds
    ``base_seed + 1 ... base_seed + seeds``, minus those a re-check trial already completed (a resumed search).

    Returns
    -------
    list of dict
        Ray trial configs: the search trial's config with ``seed`` replaced and :data:`RECHECK_KEY` set.
    """
    done = {(t.config[RECHECK_KEY], t.config.get("seed")) for t in trials
            if RECHECK_KEY in t.config and t.status == "completed"}
    configs = []
    for trial in top_candidates(trials, top):
        base = {k: v for k, v in trial.config.items() if k != OPTUNA_KEY}
        for s in range(1, seeds + 1):
            if (trial.trial_id, base_seed + s) not in done:
                configs.append({**base, "seed": base_seed + s, RECHECK_KEY: trial.trial_id})
    return configs


def recheck_table(trials: list[TrialRecord]) -> list[RecheckRow]:
    """Re-checked configurations, best mean first (empty when the search ran no re-check)."""
    by_id = {t.trial_id: t for t in trials}
    values: dict[str, list] = {}
    for t in trials:
        if RECHECK_KEY in t.config and t.status == "completed" and t.best(OBJECTIVE) is not None:
            values.setdefault(t.config[RECHECK_KEY], []).append(t.best(OBJECTIVE))
    rows = [RecheckRow(by_id[tid], by_id[tid].best(OBJECTIVE), vals) for tid, vals in values.items() if tid in by_id]
    return sorted(rows, key=lambda r: r.mean, reverse=True)


def is_tie(first: RecheckRow, second: RecheckRow) -> bool:
    """Whether two re-checked configs' means are within :data:`TIE_SES` standard errors of their difference."""
    se = math.hypot(first.se, second.se)
    return not math.isnan(se) and first.mean - second.mean <= TIE_SES * se


def sampled_text(config: dict) -> str:
    """``lr=0.0001, vgg_blocks=5``: the values the searcher sampled for a trial."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sampled_params(config).items())


def format_table(rows: list[RecheckRow]) -> list[str]:
    """Lines of the re-check table for a terminal: rank, trial, search score, mean +- SE, seeds, what was sampled."""
    lines = [f"{'rank':<5}{'trial':<12}{'search EV':>10}  {'re-check EV mean +- SE':<24}{'seeds':>5}  sampled"]
    for i, row in enumerate(rows, 1):
        stopped = "" if row.trial.status == "completed" else f" (stopped at epoch {row.trial.epochs} in the search)"
        lines.append(f"{i:<5}{row.trial.trial_id:<12}{row.search_value:>10.4f}  "
                     f"{row.mean:.4f} +- {row.se:.4f}{'':<8}{row.n:>5}  {sampled_text(row.trial.config)}{stopped}")
    if len(rows) >= 2:
        gap = rows[0].mean - rows[1].mean
        two_se = TIE_SES * math.hypot(rows[0].se, rows[1].se)
        verdict = "tie" if is_tie(rows[0], rows[1]) else "#1 ahead"
        lines.append(f"{verdict}: #1 - #2 = {gap:.4f}, two standard errors of the difference = {two_se:.4f}")
    return lines
