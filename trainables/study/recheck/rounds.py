"""The re-check's rounds: which configs race next, with which seed, and how long a round takes.

A round brings every config still in the race (:func:`~trainables.study.recheck.stats.race_table`) to one run more
than the fewest any of them has; each run is the search trial's config with a new seed
(:func:`recheck_config`). Deterministic families run no rounds.
"""

from __future__ import annotations

from trainables.core.layout import OPTUNA_KEY, RECHECK_KEY
from trainables.study.plan.pace import Pace, measure
from trainables.study.recheck.stats import race_table
from trainables.study.records.trials import TrialRecord


def recheck_config(config: dict, trial_id: str, seed: int) -> dict:
    """The Ray config of a re-check run: the search trial ``trial_id``'s ``config`` with ``seed`` and
    :data:`~trainables.core.layout.RECHECK_KEY` set (and no Optuna trial number: the run is no sample)."""
    return {**{k: v for k, v in config.items() if k != OPTUNA_KEY}, "seed": seed, RECHECK_KEY: trial_id}


def next_round(trials: list[TrialRecord], top: int, seeds: int, base_seed: int) -> list[dict]:
    """The re-check runs of the race's next round: one more seed for each config still in the race that has fewer
    than ``seeds`` and no more runs than the fewest in the race (a config a run ahead waits for the others); none
    once one config is left, for deterministic families, or when ``top`` is 0.

    Returns
    -------
    list of dict
        Ray trial configs: the search trial's config with ``seed`` replaced and ``RECHECK_KEY`` set.
    """
    rows = [r for r in race_table(trials, top) if not r.deterministic]
    racing = [r for r in rows if not r.out]
    if len(racing) < 2 and all(r.n for r in racing):
        return []
    done = {(t.config.get(RECHECK_KEY), t.config.get("seed")) for t in trials
            if RECHECK_KEY in t.config and t.status == "completed"}
    level = min(r.n for r in racing) + 1
    configs = []
    for row in racing:
        if row.n >= min(seeds, level):
            continue
        seed = next(base_seed + s for s in range(1, seeds + 1) if (row.trial.trial_id, base_seed + s) not in done)
        configs.append(recheck_config(row.trial.config, row.trial.trial_id, seed))
    return configs


def config_paces(trials: list[TrialRecord], configs: list[dict]) -> dict[str, Pace]:
    """The pace of each re-check run's config, from that config's own runs so far (its search run, its earlier
    re-check runs): a re-check run trains the same network on the same images, so it takes as long per epoch. The
    study's median pace would mislead here: the K best configs are often the largest of the space.

    Returns
    -------
    dict
        Search trial id (the configs' ``RECHECK_KEY``) -> :class:`~trainables.study.plan.pace.Pace`; a config none of
        whose runs reported is left out.
    """
    paces = {}
    for key in dict.fromkeys(c[RECHECK_KEY] for c in configs):
        own = [t.pace() for t in trials if t.results and key in (t.trial_id, t.config.get(RECHECK_KEY))]
        pace = measure(own)
        if pace is not None:
            paces[key] = pace
    return paces
