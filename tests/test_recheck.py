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
from trainables.study.pace import Pace
from trainables.study.progress import Phase, StudyProgress
from trainables.study.recheck import (TIE_SES, bootstrap, config_paces, format_table, is_tie, next_round,
                                      pooled_variance, race_table, recheck_table, runs_spent, top_candidates)
from trainables.study.records import TrialRecord

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
