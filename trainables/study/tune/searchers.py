"""The search's Optuna searcher, and the searcher of the top-K re-check's fixed configs.

Known pitfalls of Ray Tune with Optuna handled here:

- trials that ASHA stops reach Optuna as COMPLETE with a truncated value; they are
  told PRUNED here (a trial is complete only when its own fit finished);
- trials that raise after reporting reach Optuna as COMPLETE; they are told FAIL.

The re-check's first round runs in the search's own slots (:class:`FreeSlots`): once
every search trial has started, each slot that frees up takes the first re-check run
of a completed config that is among the K best whatever the trials still running
score; once none runs, that is every completed config among the K best.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from trainables.core.layout import OPTUNA_KEY, RECHECK_KEY, SAMPLED_KEY
from trainables.fitting.families import complete, config_of
from trainables.study.plan.pace import Budget, leader_paces, measure
from trainables.study.recheck.rounds import recheck_config
from trainables.study.recheck.stats import is_deterministic
from trainables.study.records.trials import RAY_TRIAL_ATTR
from trainables.study.result import COMPLETED, OPTUNA_STATE_BY_STATUS, ended_status, epoch_of

log = logging.getLogger(__name__)
OBJECTIVE_NAME = "inner-validation EV (best epoch)"


@dataclass(frozen=True)
class FreeSlots:
    """What the search's searcher needs to run the re-check's first round in the slots its trials leave free.

    Attributes
    ----------
    samples : int
        Search trials this searcher starts; past them, a free slot takes a re-check run.
    top : int
        K of the re-check.
    base_seed : int
        The study's seed: a config's first re-check run has seed ``base_seed + 1``.
    """

    samples: int
    top: int
    base_seed: int


def record_recheck(study: optuna.Study, origin: optuna.trial.FrozenTrial, config: dict, result: dict | None,
                   curve: dict[int, float], metric: str, error: bool) -> None:
    """Add an ended re-check run to the search's Optuna study, once.

    Parameters
    ----------
    study : optuna.Study
        The search's study.
    origin : optuna.trial.FrozenTrial
        The search trial the run repeats: its params and distributions are the run's.
    config : dict
        The run's Ray config (its ``seed`` becomes user attribute ``seed``; the whole config, ``config``).
    result : dict or None
        Its last result; its value is ``result[metric]`` when its fit finished (COMPLETE), else none (FAIL).
    curve : dict
        Epoch -> ``metric``: its intermediate values.
    metric : str
    error : bool
        Whether the run raised.

    A run Ray reports again (a resumed search replays a run that ended after Ray last saved its state) is not
    added twice: the study holds one trial per ``recheck_of`` and ``seed``.
    """
    if any(t.user_attrs.get("recheck_of") == origin.number and t.user_attrs.get("seed") == config["seed"]
           for t in study.get_trials(deepcopy=False)):
        return
    done = ended_status(result, error) == COMPLETED
    study.add_trial(optuna.trial.create_trial(
        params=origin.params, distributions=origin.distributions,
        value=result[metric] if done else None,
        state=optuna.trial.TrialState.COMPLETE if done else optuna.trial.TrialState.FAIL,
        intermediate_values=curve,
        user_attrs={"config": config_of(config), "recheck_of": origin.number, "seed": config["seed"]},
    ))


class StudySearcher(OptunaSearch):
    """Optuna search that records ASHA-stopped trials as PRUNED and errored ones as FAIL.

    The space (a :class:`search_spaces.context.BoundSpace`) decides every value a
    trial runs; nothing is changed after Optuna recorded the sample. The complete
    config is also stored on the Optuna trial (user attribute ``config``), so the
    study alone says what each trial ran.

    ``free_slots`` (:class:`FreeSlots`): once its trials have all started, each slot
    that frees up runs the re-check's first round for a config sure to be among the
    K best (see :meth:`_free_slot_run`); None: the search ends with its trials.
    ``budget``: this run's time budget (:class:`~trainables.study.plan.pace.Budget`, None: none); a run's option,
    not the study's: a searcher restored from the study's saved state keeps the budget it was given for this run.

    Its records, saved with Ray's state: ``params`` (search trial id -> its Ray config), ``rechecks`` (re-check
    run's trial id -> its config), ``curves`` (re-check run's trial id -> epoch -> metric), ``seen`` (see
    :meth:`_watch`), ``completed`` (see :meth:`_completed`).
    """

    def __init__(self, *args, free_slots: FreeSlots | None = None, budget: Budget | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # What optuna-dashboard and Optuna's plots call the objective (else "Objective 0").
        with warnings.catch_warnings():  # "experimental" since Optuna 3.2: nothing a user can act on
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._ot_study.set_metric_names([OBJECTIVE_NAME])
        self.free_slots, self.budget = free_slots, budget
        self.started = 0
        self.restored = False  # from Ray's saved state (a resumed search)
        self.records: dict[str, dict] = {name: {} for name in ("params", "rechecks", "curves", "seen", "completed")}

    def suggest(self, trial_id: str):
        if self.free_slots is not None and self.started >= self.free_slots.samples:
            return self._free_slot_run(trial_id) if not self.restored else Searcher.FINISHED
        if self._over_budget():
            return Searcher.FINISHED
        with warnings.catch_warnings():
            # Ray warns when sampling a define-by-run space takes over a second, which Optuna's SQLite storage does
            # when the trials keep every core busy: nothing a user can act on.
            warnings.filterwarnings("ignore", message=".*[Dd]efine-by-run function passed.*")
            params = super().suggest(trial_id)
        if params is None:
            return None
        self.started += 1
        self._watch().setdefault(trial_id, [time.time(), 0, 0.0, 0.0])
        ot_trial = self._ot_trials[trial_id]
        # Validated here, once: the trial's Ray config holds the whole config (defaults filled in) beside the
        # sampled helpers; everything downstream reads it (trainables.fitting.families.config_of).
        config = complete(config_of(params))
        ot_trial.set_user_attr("config", config)
        ot_trial.set_user_attr(RAY_TRIAL_ATTR, trial_id)  # a trial whose folder is lost with its node is still one
        params.update(config)
        params[SAMPLED_KEY] = sorted(ot_trial.params)
        params[OPTUNA_KEY] = ot_trial.number
        self.records["params"][trial_id] = dict(params)
        return params

    def _free_slot_run(self, trial_id: str):
        """The re-check's first round in a slot the search's trials leave free: None (ask again) while no config
        qualifies and a search trial runs; Searcher.FINISHED once none runs and every config that qualifies has its
        run.

        A config qualifies when it completed its fit, its family depends on the seed, it has no re-check run yet, its
        run ends within the time budget, and it is among the K best whatever the trials still running score: ranked r
        among the completed trials with n still running, r + n <= K. Its run is the one the race's first round gives
        it (seed ``base_seed + 1``); of several, the longest goes first (longest first ends a set of runs on a few
        slots soonest).
        """
        running = [t for t in self._ot_trials if t not in self._completed_trials]
        completed = self._completed()
        ranked = sorted((t for t in completed if completed[t].get(self.metric) is not None),
                        key=lambda t: completed[t][self.metric], reverse=True)
        params, rechecks = self.records["params"], self.records["rechecks"]
        taken = {c[RECHECK_KEY] for c in rechecks.values()}
        sure = [t for t in ranked[:max(self.free_slots.top - len(running), 0)]
                if t not in taken and t in params and not is_deterministic(params[t])]
        paces = {t: leader_paces([completed[t]], self.metric) for t in sure}
        now = time.time()
        sure = [t for t in sure if paces[t] and (self.budget is None or self.budget.fits_run(paces[t][0], now))]
        if not sure:
            return None if running else Searcher.FINISHED
        origin = max(sure, key=lambda t: paces[t][0].trial(epoch_of(completed[t])))
        config = recheck_config(params[origin], origin, self.free_slots.base_seed + 1)
        rechecks[trial_id] = config
        log.info("re-check round 1 in a free slot of the search: trial %s's config, seed %d%s", origin, config["seed"],
                 f" ({len(running)} search trial{'s' * (len(running) > 1)} still running)" if running else "")
        return config

    def _watch(self) -> dict:
        """Trial id -> [suggested at, epochs run, last epoch's seconds, wall seconds]: this run's pace."""
        return self.records["seen"]

    def _observe(self, trial_id: str, result: dict | None) -> None:
        seen = self._watch().get(trial_id)
        if seen is not None and result and result.get("training_iteration"):
            seen[1:] = [result["training_iteration"], result.get("time_this_iter_s", 0.0), time.time() - seen[0]]

    def observed(self) -> list[tuple[int, float, float]]:
        """What this run saw of its trials, for :func:`trainables.study.plan.pace.measure`: (epochs, last epoch's
        seconds, seconds from being suggested to the last result) per trial that reported."""
        return [tuple(v[1:]) for v in self._watch().values() if v[1]]

    def _completed(self) -> dict:
        """Trial id -> last result of this run's trials that completed their fit."""
        return self.records["completed"]

    def _over_budget(self) -> bool:
        if self.budget is None:
            return False
        pace = measure(self.observed())
        leaders = leader_paces(list(self._completed().values()), self.metric)
        return pace is not None and not self.budget.fits_trial(pace, time.time(), leaders)

    def restore(self, checkpoint_path: str) -> None:
        """Ray's saved state of a resumed search; this run's budget stays (a run's option). Its free slots stay
        empty: a trial the kill left half-known (asked of Optuna, missing from Ray's state) would keep the searcher
        waiting for it."""
        budget = self.budget
        super().restore(checkpoint_path)
        self.budget, self.restored = budget, True

    def _finished_in_storage(self, trial_id: str) -> bool:
        """Whether Optuna already holds the trial as ended (it ended before an interruption Ray's state missed)."""
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None:
            return False
        state = self._ot_study._storage.get_trial(ot_trial._trial_id).state
        return state.is_finished()

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.records["rechecks"]:
            if result.get(self.metric) is not None and result.get("training_iteration"):
                self.records["curves"].setdefault(trial_id, {})[epoch_of(result)] = float(result[self.metric])
            return
        self._observe(trial_id, result)
        if self._finished_in_storage(trial_id) or trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return  # never reported again: its result is the study's
        self._report(trial_id, result)

    def _report(self, trial_id: str, result: dict) -> None:
        """The trial's score at its own epoch (a trial resumed from a checkpoint reports some epochs again; Optuna
        keeps the first value of a step, which is the same)."""
        if result.get(self.metric) is None or not result.get("training_iteration"):
            return
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="The reported value is ignored", category=UserWarning)
                self._ot_trials[trial_id].report(result[self.metric], epoch_of(result))
        except (ValueError, RuntimeError, NotImplementedError):  # finished in storage already
            pass

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.records["rechecks"]:
            self.on_trial_result(trial_id, result or {})
            config = self.records["rechecks"][trial_id]
            origin = self._ot_study._storage.get_trial(self._ot_trials[config[RECHECK_KEY]]._trial_id)
            record_recheck(self._ot_study, origin, config, result, self.records["curves"].pop(trial_id, {}), self.metric,
                           error)
            return
        self._observe(trial_id, result)
        if ended_status(result, error) == COMPLETED:
            self._completed()[trial_id] = result
        if self._finished_in_storage(trial_id):
            self._completed_trials.add(trial_id)
            return
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result, error)
        ot_trial = self._ot_trials[trial_id]
        # Ray hands the last result to on_trial_complete, not on_trial_result: record it as the trial's last
        # intermediate value, so that a trial pruned at its first rung still shows where it stood.
        self._report(trial_id, result or {})
        # Pruned: stopped by the scheduler before its own fit finished (Ray would tell Optuna COMPLETE).
        status = ended_status(result, error)
        value = result.get(self.metric) if status == COMPLETED else None
        try:
            self._ot_study.tell(ot_trial, value, state=optuna.trial.TrialState[OPTUNA_STATE_BY_STATUS[status]])
        except (ValueError, RuntimeError) as err:  # e.g. already finished in storage after a restore
            log.warning("optuna: could not record trial %s: %s", trial_id, err)
        self._completed_trials.add(trial_id)


class FixedSearcher(Searcher):
    """Serves fixed configs, one per trial, in the order given (the re-check's runs, the ladder's final trainings)."""

    def __init__(self, configs: list[dict], metric: str):
        super().__init__(metric=metric, mode="max")
        self.configs = list(configs)
        self._served: dict[str, dict] = {}

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return True  # the configs are fixed; nothing to set

    def suggest(self, trial_id: str):
        if not self.configs:
            return Searcher.FINISHED
        self._served[trial_id] = self.configs.pop(0)
        return self._served[trial_id]

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._served.pop(trial_id, None)

    def save(self, checkpoint_path: str) -> None:
        # What ran is on disk (the study's trials, the final trainings' folders); nothing else needs saving.
        Path(checkpoint_path).write_text("")

    def restore(self, checkpoint_path: str) -> None:
        pass


class RecheckSearcher(FixedSearcher):
    """Serves the top-K re-check's fixed configs (:func:`trainables.study.recheck.rounds.next_round`), one per trial.

    Each ended re-check trial is added to the search's Optuna study with the params and
    distributions of the trial it repeats, and user attributes ``recheck_of`` (that
    trial's number), ``seed`` and ``config``: the study alone says what every trial ran.
    """

    def __init__(self, configs: list[dict], origins: dict[str, int], study_name: str, storage_url: str, metric: str):
        super().__init__(configs, metric)
        self.origins = dict(origins)
        self.study_name, self.storage_url = study_name, storage_url
        self._curves: dict[str, dict[int, float]] = {}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if result.get(self.metric) is not None and result.get("training_iteration"):
            self._curves.setdefault(trial_id, {})[epoch_of(result)] = float(result[self.metric])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        config = self._served.pop(trial_id, None)
        if config is None:
            return
        self.on_trial_result(trial_id, result or {})
        study = optuna.load_study(study_name=self.study_name, storage=self.storage_url)
        number = self.origins[config[RECHECK_KEY]]
        origin = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
        record_recheck(study, origin, config, result, self._curves.pop(trial_id, {}), self.metric, error)
