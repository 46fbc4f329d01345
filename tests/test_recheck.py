"""The top-K re-check's rules, as pure functions over trial records on disk (no Ray, milliseconds).

Which configs are re-checked; the racing rule (a config leaves once its mean lies more than two standard errors of
the difference below the leader's); the seed and image-sampling errors; deterministic families compared by the
paired bootstrap alone.
"""

import math

import numpy as np
import pytest

from trainables.core.layout import INNER_SUMS_FILE, OPTUNA_KEY, RECHECK_KEY
from trainables.core.metrics import object_sums
from trainables.study.plan.pace import Pace
from trainables.study.recheck.rounds import config_paces, next_round
from trainables.study.recheck.stats import (TIE_SES, bootstrap, is_tie, pooled_variance, race_table, recheck_table,
                                            top_candidates)
from trainables.study.recheck.table import format_table, runs_spent
from trainables.study.records.trials import TrialRecord
from trainables.study.run.progress import Phase, StudyProgress

OBJECTS = np.repeat([f"o{i:02d}" for i in range(16)], 4)  # 64 inner images of 16 objects
Y = np.random.default_rng(0).normal(size=(64, 8))


def trial(tid, status, curve, seed=0, folder=None, model="network", **extra):
    config = {"model": model, "lr": 0.001, "seed": seed, "_sampled": ["lr"], OPTUNA_KEY: abs(hash(tid)) % 1000, **extra}
    return TrialRecord(tid, config, [{"best_inner_ev": v, "training_iteration": i + 1} for i, v in enumerate(curve)],
                       status, folder)


def with_sums(tmp_path, tid, noise, seed, **kwargs) -> TrialRecord:
    """A completed trial whose inner-split predictions are Y plus noise of the given size; its score is their EV."""
    pred = Y + noise * np.random.default_rng(seed).normal(size=Y.shape)
    folder = tmp_path / tid
    folder.mkdir()
    sums = object_sums(Y, pred, OBJECTS)
    np.savez(folder / INNER_SUMS_FILE, **sums)
    from trainables.core.metrics import explained_variance

    return trial(tid, "completed", [explained_variance(Y, pred)], folder=folder, **kwargs)


def rechecks(of, values, start=1):
    return [trial(f"{of}{s}", "completed", [v], seed=s, **{RECHECK_KEY: of}) for s, v in enumerate(values, start)]


def test_completed_configs_come_first_then_those_stopped_furthest():
    trials = [trial("a", "completed", [0.1, 0.2]), trial("b", "pruned", [0.3]), trial("c", "pruned", [0.1, 0.25]),
              trial("d", "completed", [0.1, 0.15]), trial("e", "failed", [0.9])]
    assert [t.trial_id for t in top_candidates(trials, 2)] == ["a", "d"]
    # Fewer completed than asked: the early-stopped trial that reached the later rung comes before a higher score
    # at an earlier one; failed trials never.
    assert [t.trial_id for t in top_candidates(trials, 5)] == ["a", "d", "c", "b"]


def test_the_first_round_gives_each_config_one_new_seed():
    trials = [trial("a", "completed", [0.2]), trial("b", "completed", [0.1]), trial("c", "completed", [0.05])]
    configs = next_round(trials, top=2, seeds=3, base_seed=5)
    assert [(c[RECHECK_KEY], c["seed"]) for c in configs] == [("a", 6), ("b", 6)]
    assert all(OPTUNA_KEY not in c and c["lr"] == 0.001 for c in configs)


def test_a_clear_winner_costs_one_round():
    """Three configs, one round each: #1's lead is many standard errors, so the others leave and the race ends with
    K runs, not K x S."""
    trials = [trial("a", "completed", [0.30]), trial("b", "completed", [0.21]), trial("c", "completed", [0.19])]
    trials += rechecks("a", [0.31]) + rechecks("b", [0.20]) + rechecks("c", [0.18])
    rows = race_table(trials, 3)
    assert [r.trial.trial_id for r in rows] == ["a", "b", "c"] and [r.out for r in rows] == [False, True, True]
    # The pooled seed variance: each config's search run and re-check run, 3 degrees of freedom.
    assert pooled_variance([[0.31, 0.30], [0.20, 0.21], [0.18, 0.19]]) == pytest.approx(0.00005)
    assert rows[1].diff_se == pytest.approx(math.sqrt(0.00005 * 2))
    assert next_round(trials, 3, 3, 0) == [] and runs_spent(rows) == 3
    assert not is_tie(rows[0], rows[1]) and "#1 ahead" in format_table(rows)[-1]


def test_a_tie_gets_every_seed_and_a_config_clearly_below_leaves():
    trials = [trial("a", "completed", [0.25]), trial("b", "completed", [0.24]), trial("c", "completed", [0.10])]
    trials += rechecks("a", [0.22]) + rechecks("b", [0.23]) + rechecks("c", [0.05])
    assert [(c[RECHECK_KEY], c["seed"]) for c in next_round(trials, 3, 3, 0)] == [("b", 2), ("a", 2)]
    trials += rechecks("a", [0.26], 2) + rechecks("b", [0.21], 2)
    assert [(c[RECHECK_KEY], c["seed"]) for c in next_round(trials, 3, 3, 0)] == [("a", 3), ("b", 3)]
    trials += rechecks("a", [0.24], 3) + rechecks("b", [0.25], 3)
    rows = race_table(trials, 3)
    assert next_round(trials, 3, 3, 0) == [] and [r.n for r in rows] == [3, 3, 1] and runs_spent(rows) == 7
    assert is_tie(rows[0], rows[1]) and rows[2].out and format_table(rows)[-1].startswith("tie: #1 - #2")


def test_the_search_run_counts_in_the_seed_variance_not_in_the_mean():
    trials = [trial("a", "completed", [0.40]), trial("b", "completed", [0.20])] + rechecks("a", [0.20, 0.22])
    trials += rechecks("b", [0.24, 0.25])
    rows = recheck_table(trials)
    assert [r.trial.trial_id for r in rows] == ["b", "a"] and rows[1].mean == pytest.approx(0.21)
    assert rows[1].search_value == 0.40
    expected = pooled_variance([[0.20, 0.22, 0.40], [0.24, 0.25, 0.20]])
    assert rows[0].seed_se == pytest.approx(math.sqrt(expected / 2))


def test_the_bootstrap_is_paired_and_exact(tmp_path):
    same = [with_sums(tmp_path, "x", 0.5, seed=1).evidence()]
    boot = bootstrap([same, same], resamples=200)
    assert boot.shape == (200, 2) and np.all(boot[:, 0] == boot[:, 1])  # paired: the same objects for both
    # Every object once: the bootstrap's EV is the trial's own.
    from trainables.core.metrics import explained_variance_of_objects

    assert explained_variance_of_objects(same[0], np.ones((1, 16)))[0] == pytest.approx(
        with_sums(tmp_path, "y", 0.5, seed=1).best("best_inner_ev"))


def test_deterministic_families_run_no_seeds_and_are_compared_by_the_bootstrap(tmp_path):
    close = [with_sums(tmp_path, "a", 0.5, seed=1, model="ridge"), with_sums(tmp_path, "b", 0.5, seed=5, model="ridge")]
    rows = race_table(close, 2)
    assert all(r.deterministic and r.n == 0 and r.seed_se == 0 and r.image_se > 0 for r in rows)
    assert next_round(close, 2, 3, 0) == [] and runs_spent(rows) == 0
    assert is_tie(rows[0], rows[1]) and rows[0].mean == rows[0].search_value
    far = [with_sums(tmp_path, "c", 0.2, seed=3, model="ridge"), with_sums(tmp_path, "d", 2.0, seed=4, model="ridge")]
    rows = race_table(far, 2)
    assert [r.trial.trial_id for r in rows] == ["c", "d"] and rows[1].out and not is_tie(rows[0], rows[1])
    gap = rows[0].mean - rows[1].mean
    assert gap > TIE_SES * rows[1].diff_se > 0
    assert format_table(rows)[1].split()[9] == "-"  # no seed runs


def test_a_network_without_its_sums_falls_back_to_the_seed_error():
    trials = [trial("a", "completed", [0.3]), trial("b", "completed", [0.2])] + rechecks("a", [0.3]) + rechecks(
        "b", [0.2])
    rows = race_table(trials, 2)
    assert math.isnan(rows[0].image_se) and rows[0].se == pytest.approx(rows[0].seed_se)


def timed(tid, epoch_s, epochs=6, setup_s=4.0, **extra):
    """A completed trial whose epochs took ``epoch_s`` each, the first one ``setup_s`` more."""
    record = trial(tid, "completed", [0.1] * epochs, **extra)
    for i, r in enumerate(record.results):
        r.update(time_this_iter_s=epoch_s + setup_s * (i == 0), time_total_s=setup_s + (i + 1) * epoch_s)
    return record


def test_a_round_is_timed_by_its_own_configs_not_by_the_study_s_median():
    """The K best configs are often the slowest of a space: each re-check run is timed by its config's own runs."""
    trials = [timed("big", 20.0), timed("small", 2.0, epochs=2), timed("tiny", 1.0, epochs=2), timed("mid", 10.0),
              timed("big_again", 22.0, seed=1, **{RECHECK_KEY: "big"})]
    configs = [{RECHECK_KEY: "big", "seed": 2}, {RECHECK_KEY: "mid", "seed": 1}]
    paces = config_paces(trials, configs)
    assert set(paces) == {"big", "mid"}
    assert paces["big"].epoch_s == pytest.approx(21.0)  # its search run and its earlier re-check run
    assert paces["mid"] == Pace(10.0, 4.0)
    assert config_paces([trial("x", "completed", [])], [{RECHECK_KEY: "x"}]) == {}


def test_the_round_s_display_counts_each_run_s_epochs_left_at_its_own_pace():
    from ray.tune.experiment import Trial

    paces = {"big": Pace(20.0, 4.0), "mid": Pace(10.0, 4.0)}
    progress = StudyProgress(Phase("re-check round 1", "lr", 3, 6.0, 6, 2, None, paces))
    big = Trial("fn", config={RECHECK_KEY: "big", "seed": 1}, stub=True)
    big.set_status(Trial.RUNNING)
    big.update_last_result({"training_iteration": 2, "epoch": 2, "time_this_iter_s": 25.0})
    mid = Trial("fn", config={RECHECK_KEY: "mid", "seed": 1}, stub=True)
    mid.set_status(Trial.RUNNING)
    mid.update_last_result({"training_iteration": 1, "epoch": 1, "time_this_iter_s": 14.0})
    # big: 4 epochs left at its own 25 s (it has timed an epoch past its first); mid: 5 left at its config's 10 s.
    assert progress.eta([big, mid]) == "about 1.7 min left"
    big.set_status(Trial.TERMINATED)
    # mid: 50 s left; a third config not yet started: 4 + 6 x 20 = 124 s in the free slot.
    progress = StudyProgress(Phase("re-check round 1", "lr", 3, 6.0, 6, 2, None, {**paces, "next": Pace(20.0, 4.0)}))
    assert progress.eta([big, mid]) == "about 2.1 min left"


def test_the_search_s_display_times_the_re_check_by_the_best_trials_so_far():
    """The re-check trains the K best configs again to their end: the first round is timed by the best completed
    trials' own runs; the most is S rounds."""
    import time

    from ray.tune.experiment import Trial

    def ended(name, score, epoch_s, epochs=6, done=True):
        t = Trial("fn", config={"lr": 0.1}, stub=True)
        t.run_metadata.start_time = time.time() - 4 - epochs * epoch_s
        t.update_last_result({"training_iteration": epochs, "epoch": epochs, "time_this_iter_s": epoch_s,
                              "time_total_s": 4 + epochs * epoch_s, "best_inner_ev": score, "fit_done": int(done)})
        t.set_status(Trial.TERMINATED)
        return t

    trials = [ended("big", 0.3, 20.0), ended("small", 0.2, 2.0), ended("worse", 0.1, 30.0),
              ended("stopped", 0.5, 1.0, epochs=2, done=False)]
    progress = StudyProgress(Phase("search s", "lr", 4, 6.0, 6, 2, (2, 2)))
    # Round 1: big (4 + 6 x 20 = 124 s) beside small (16 s) on two slots: 124 s; at most 2 rounds: 248 s.
    assert progress.eta(trials).endswith("then the re-check: 2.1 min to 4.1 min (racing: 2 to 4 runs)")


def test_a_config_a_run_ahead_sits_out_the_round_that_catches_the_others_up():
    """A config whose first seed ran in a slot the search left free waits while the others get theirs."""
    trials = [trial("a", "completed", [0.25]), trial("b", "completed", [0.24])] + rechecks("a", [0.22])
    assert [(c[RECHECK_KEY], c["seed"]) for c in next_round(trials, 2, 3, 0)] == [("b", 1)]
    trials += rechecks("b", [0.23])  # a tie so far: both go on
    assert sorted((c[RECHECK_KEY], c["seed"]) for c in next_round(trials, 2, 3, 0)) == [("a", 2), ("b", 2)]


def free_slot_searcher(tmp_path, space="shallow_cnn", samples=3):
    import optuna

    from search_spaces.context import BoundSpace, SpaceContext
    from trainables.study.tune.searchers import FreeSlots, StudySearcher

    return StudySearcher(space=BoundSpace(space, SpaceContext(pretrained=frozenset(), seed=7)), metric="best_inner_ev",
                         mode="max", sampler=optuna.samplers.RandomSampler(seed=0), study_name="s",
                         storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}"),
                         free_slots=FreeSlots(samples=samples, top=2, base_seed=7))


def done(score, epochs=4, epoch_s=2.0, fit_done=True):
    return {"best_inner_ev": score, "training_iteration": epochs, "epoch": epochs, "time_this_iter_s": epoch_s,
            "time_total_s": 3 + epochs * epoch_s, "fit_done": int(fit_done)}


def test_a_slot_the_search_s_last_trials_leave_free_re_checks_a_config_sure_to_be_among_the_k_best(tmp_path):
    """Real Optuna searcher, no cluster: once its 3 trials have started, a free slot takes the first re-check run of a
    completed config only when no running trial can push it out of the top 2, and once none runs, of each of the 2
    best; each run is recorded in the same Optuna study as a re-check of its trial; no search trial is sampled past
    the 3."""
    from ray.tune.search import Searcher

    searcher = free_slot_searcher(tmp_path)
    first, second = searcher.suggest("t1"), searcher.suggest("t2")
    searcher.on_trial_complete("t1", done(0.3))
    third = searcher.suggest("t3")
    assert OPTUNA_KEY in third and RECHECK_KEY not in third
    # t2 and t3 run: either could still beat t1 and t1's rank 1 + 2 running > 2, so the slot waits.
    assert searcher.suggest("t4") is None
    searcher.on_trial_complete("t2", done(0.1, epochs=1, fit_done=False))  # stopped early
    run = searcher.suggest("t4")  # t3 alone runs: t1 is among the 2 best whatever t3 scores
    assert run[RECHECK_KEY] == "t1" and run["seed"] == 8 and OPTUNA_KEY not in run
    assert {k: v for k, v in run.items() if k not in ("seed", RECHECK_KEY)} == {
        k: v for k, v in first.items() if k not in ("seed", OPTUNA_KEY)}
    assert searcher.suggest("t5") is None  # t1 has its run; nothing else qualifies
    searcher.on_trial_result("t4", {"best_inner_ev": 0.27, "training_iteration": 1, "epoch": 1})
    searcher.on_trial_complete("t4", done(0.29))
    searcher.on_trial_complete("t3", done(0.2))
    assert searcher.suggest("t5")[RECHECK_KEY] == "t3"  # the search is over: t3 is #2 of the completed
    assert searcher.suggest("t6") is Searcher.FINISHED
    searcher.on_trial_complete("t5", done(0.18))
    searcher.on_trial_complete("t5", done(0.18))  # replayed by a restored search: recorded once
    trials = searcher._ot_study.get_trials(deepcopy=False)
    assert len(trials) == 5  # 3 search trials, 2 re-check runs
    origin = next(t for t in trials if t.number == first[OPTUNA_KEY])
    repeat = next(t for t in trials if t.user_attrs.get("recheck_of") == origin.number)
    assert repeat.user_attrs["recheck_of"] == origin.number and repeat.user_attrs["seed"] == 8
    assert repeat.params == origin.params and repeat.value == 0.29 and repeat.intermediate_values == {1: 0.27, 4: 0.29}
    assert second[OPTUNA_KEY] != first[OPTUNA_KEY]


def test_a_free_slot_takes_no_run_that_would_end_past_the_budget_nor_one_of_a_deterministic_family(tmp_path):
    import time

    from trainables.study.plan.pace import Budget

    searcher = free_slot_searcher(tmp_path, samples=2)
    searcher.suggest("t1"), searcher.suggest("t2")
    searcher.on_trial_complete("t1", done(0.3, epochs=4, epoch_s=20.0))  # a run to its end: 3 + 6 x 20 = 123 s
    searcher.budget = Budget(time.time() + 100, 3.0, 6, 2, 2, closing_s=15)
    assert searcher.suggest("t3") is None
    searcher.budget = Budget(time.time() + 200, 3.0, 6, 2, 2, closing_s=15)
    assert searcher.suggest("t3")[RECHECK_KEY] == "t1"
    searcher.budget = None
    (tmp_path / "ridge").mkdir()
    ridge = free_slot_searcher(tmp_path / "ridge", space="ridge_pixels", samples=2)
    ridge.suggest("r1"), ridge.suggest("r2")
    ridge.on_trial_complete("r1", done(0.3, epochs=1))
    assert ridge.suggest("r3") is None  # a seed changes nothing in a ridge fit: the bootstrap compares them


def test_the_search_s_display_shows_the_re_check_s_runs_in_its_slots_apart_from_its_trials():
    """The run is no trial of the search (6 of 6 started, 1 running); its row says RE-CHECK; it holds its slot to its
    end; the rest of the first round is timed without its config, which has its seed already."""
    import time

    from ray.tune.experiment import Trial

    def stub(config, score, epoch_s, epochs, status, done=True):
        t = Trial("fn", config={"lr": 0.1, **config}, stub=True)
        t.run_metadata.start_time = time.time() - 4 - epochs * epoch_s
        t.update_last_result({"training_iteration": epochs, "epoch": epochs, "time_this_iter_s": epoch_s,
                              "time_total_s": 4 + epochs * epoch_s, "best_inner_ev": score, "fit_done": int(done)})
        t.set_status(status)
        return t

    big = stub({}, 0.3, 20.0, 6, Trial.TERMINATED)
    small = stub({}, 0.2, 2.0, 6, Trial.TERMINATED)
    ended = [big, small] + [stub({}, 0.1, 1.0, 2, Trial.TERMINATED, done=False) for _ in range(3)]
    last = stub({}, 0.05, 10.0, 1, Trial.RUNNING, done=False)
    rerun = stub({RECHECK_KEY: big.trial_id}, 0.25, 20.0, 2, Trial.RUNNING, done=False)
    progress = StudyProgress(Phase("search s", "lr", 6, 6.0, 6, 2, (2, 2)))
    lines = progress.lines(ended + [last, rerun])
    assert lines[0].startswith("search s: 6 of 6 trials started, 1 running, 5 ended (2 completed, 3 stopped early, "
                               "0 failed); re-check round 1: 1 run in its slots; ")
    assert [row.split()[1] for row in lines[2:4]] == ["RUNNING", "RE-CHECK"]
    # The search: the re-check run's 4 epochs left at its own 20 s (80 s) outlast the last trial's 5 at the study's
    # median 1.5 s. The rest of the first round: small's run alone (4 + 6 x 2 = 16 s); at most one more round of
    # both: 16 + 124 s.
    assert progress.eta(ended + [last, rerun]) == ("about 80 s left for the search, then the re-check: 16 s to "
                                                   "2.3 min (racing: 2 to 4 runs)")


def test_the_export_takes_the_re_check_s_table_only_once_every_config_it_races_has_had_a_run():
    """A time budget can end the first round midway: a's re-check mean against b's selected single-seed score would
    pick a for having been re-checked; the export then ranks by the search's scores."""
    from types import SimpleNamespace

    from trainables.study.export.best_config import rechecked

    plan = SimpleNamespace(recheck=SimpleNamespace(top=2))
    trials = [trial("a", "completed", [0.25]), trial("b", "completed", [0.30])] + rechecks("a", [0.26])
    assert rechecked(plan, trials) == []
    trials += rechecks("b", [0.24])
    assert [r.trial.trial_id for r in rechecked(plan, trials)] == ["a", "b"]
