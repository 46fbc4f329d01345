"""A study's rows of the ladder (``trainables.ladder``): the best config for each value of its ladder axes.

A study's space names its ladder axes (``LADDER_AXES``: the scientific
hyperparameters whose every value is a row; ``layer`` x ``weights`` for the layer
sweep). A rung is the best config for one value of those axes: the re-check's best
mean among the configs it raced for that value, else the best completed search
trial. A study without ladder axes gives one rung, its exported config (the
re-check's best mean, else its best trial). Read from the files alone (no Ray).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from search_spaces import ladder_axes, ladder_group
from trainables.fitting.families import config_of, get_family
from trainables.study.export.best_config import best_config, exported, rank, rechecked
from trainables.study.plan.search_plan import SearchPlan, read_plan
from trainables.study.records.trials import TrialRecord, load_optuna_study, load_trials
from trainables.study.result import OBJECTIVE


@dataclass(frozen=True)
class RungConfig:
    """One row of the ladder, as a study gives it.

    Attributes
    ----------
    study, group : str
        The study, and the heading of the table its rows go under (the space's ``LADDER_GROUP``).
    label : str
        The row: its axes' values (``layer=block12, weights=imagenet``), or for a study without axes the value of its
        scientific hyperparameter.
    axes : dict
        Ladder axis -> value ({} for a study without axes).
    trial_id : str
        The search trial whose config it is.
    source : str
        ``re-check`` (the re-check's best mean) or ``search`` (the best search score).
    config : dict
        The config to train, with the export's ``provenance``.
    deterministic : bool
        Its family gives the same fit for every seed (one final training; no ensemble).
    """

    study: str
    group: str
    label: str
    axes: dict
    trial_id: str
    source: str
    config: dict = field(repr=False)
    deterministic: bool = False

    @property
    def title(self) -> str:
        """The row with its study: ``layer_sweep: weights=imagenet, layer=block12``."""
        return self.label if self.label.startswith(self.study) else f"{self.study}: {self.label}"

    @property
    def slug(self) -> str:
        """A folder name for the rung: its label in plain characters and a hash of its config (another config for the
        same row, once its study has run further, gets a folder of its own)."""
        text = re.sub(r"[^A-Za-z0-9.]+", "-", self.label).strip("-")[:60] or "best"
        digest = hashlib.sha1(json.dumps(config_of(self.config), sort_keys=True).encode()).hexdigest()[:8]
        return f"{text}-{digest}"


class NoRungs(RuntimeError):
    """A study with no completed trial: no row of the ladder; the message names it."""


def axis_order(folder: Path, plan: SearchPlan, axes: tuple) -> dict[str, list]:
    """Each ladder axis's values in the order the space lists them (its Optuna distributions of categorical choices),
    axis by axis; an axis the space fixes, or samples from a range, is absent."""
    order: dict[str, list] = {}
    for trial in load_optuna_study(folder, plan.name).get_trials(deepcopy=False):
        for axis in axes:
            choices = getattr(trial.distributions.get(axis), "choices", None)
            if axis not in order and choices:
                order[axis] = list(choices)
        if len(order) == len(axes):
            break
    return order


def study_rungs(folder: Path, trials: list[TrialRecord] | None = None) -> list[RungConfig]:
    """The ladder's rows of the study in ``folder`` (``trials``: its records, when read already), in the order of its
    axes' values.

    Raises
    ------
    NoRungs
        The study has no completed trial.
    """
    plan = read_plan(folder)
    trials = load_trials(folder) if trials is None else trials
    if not rank(trials):
        raise NoRungs(f"study '{plan.name}' in {Path(folder).parent} has no completed trial: no row of the ladder")
    axes = ladder_axes(plan.space)
    group = ladder_group(plan.space)
    if not axes:
        config = best_config(folder, trials)
        trial_id = config["provenance"]["trial_id"]
        trial = next(t for t in trials if t.trial_id == trial_id)
        value = trial.config.get(plan.scientific)
        label = f"{plan.name}: {plan.scientific}={_text(value)}" if value is not None else plan.name
        source = "re-check" if config["provenance"].get("recheck") else "search"
        return [_rung(plan, group, label, {}, trial, source, config)]
    rows = {r.trial.trial_id: r for r in rechecked(plan, trials)}
    best: dict[tuple, tuple] = {}
    for trial in rank(trials):  # completed search trials, best search score first
        key = tuple(trial.config.get(a) for a in axes)
        row = rows.get(trial.trial_id)
        # A re-checked config wins its row by its re-check mean; else the first (best) search score stays.
        score = (row is not None, row.mean if row is not None else trial.best(OBJECTIVE))
        if key not in best or score > best[key][0]:
            best[key] = (score, trial)
    order = axis_order(folder, plan, axes)

    def position(key: tuple) -> tuple:
        return tuple(order[a].index(v) if a in order and v in order[a] else len(order.get(a, ())) for a, v in
                     zip(axes, key))

    rungs = []
    for key in sorted(best, key=position):
        (rechecked_, _), trial = best[key]
        values = dict(zip(axes, key))
        label = ", ".join(f"{a}={_text(v)}" for a, v in values.items())
        rungs.append(_rung(plan, group, label, values, trial, "re-check" if rechecked_ else "search",
                           exported(plan, folder, trial)))
    return rungs


def _rung(plan: SearchPlan, group: str, label: str, axes: dict, trial: TrialRecord, source: str,
          config: dict) -> RungConfig:
    return RungConfig(plan.name, group, label, axes, trial.trial_id, source, config,
                      get_family(config["model"]).deterministic)


def _text(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def missing_rows(folder: Path, rungs: list[RungConfig]) -> list[dict]:
    """The combinations of the study's ladder axes that have no rung (no completed trial): said beside the table."""
    plan = read_plan(folder)
    axes = ladder_axes(plan.space)
    if not axes:
        return []
    order = axis_order(folder, plan, axes)
    # An axis the space fixes (or samples from a range) has the values its rows have.
    values = [order.get(a) or sorted({r.axes.get(a) for r in rungs}, key=str) for a in axes]
    have = {tuple(r.axes.get(a) for a in axes) for r in rungs}
    return [dict(zip(axes, combo)) for combo in itertools.product(*values) if combo not in have]
