"""Which configs the top-K re-check trains again, and how it ranks them (no Ray: trial records as on disk)."""

import math

import pytest

from trainables.study.recheck import RecheckRow, is_tie, recheck_configs, recheck_table, top_candidates
from trainables.core.layout import RECHECK_KEY
from trainables.study.records import TrialRecord


def trial(tid, status, curve, seed=0, **extra):
    config = {"lr": 0.001, "seed": seed, "_sampled": ["lr"], "_optuna_trial": hash(tid) % 1000, **extra}
    return TrialRecord(tid, config, [{"best_inner_ev": v, "training_iteration": i + 1} for i, v in enumerate(curve)],
                       status)


def test_completed_configs_come_first_then_those_stopped_furthest():
    trials = [trial("a", "completed", [0.1, 0.2]), trial("b", "pruned", [0.3]), trial("c", "pruned", [0.1, 0.25]),
              trial("d", "completed", [0.1, 0.15]), trial("e", "failed", [0.9])]
    assert [t.trial_id for t in top_candidates(trials, 2)] == ["a", "d"]
    # Fewer completed than asked: the early-stopped trial that reached the later rung comes before a higher score
    # at an earlier one; failed trials never.
    assert [t.trial_id for t in top_candidates(trials, 5)] == ["a", "d", "c", "b"]


def test_recheck_configs_repeat_with_new_seeds_and_skip_what_is_done():
    trials = [trial("a", "completed", [0.2]), trial("b", "completed", [0.1])]
    configs = recheck_configs(trials, top=2, seeds=2, base_seed=5)
    assert [(c[RECHECK_KEY], c["seed"]) for c in configs] == [("a", 6), ("a", 7), ("b", 6), ("b", 7)]
    assert all("_optuna_trial" not in c and c["lr"] == 0.001 for c in configs)
    done = trials + [trial("r1", "completed", [0.2], seed=6, **{RECHECK_KEY: "a"})]
    assert [(c[RECHECK_KEY], c["seed"]) for c in recheck_configs(done, 2, 2, 5)] == [("a", 7), ("b", 6), ("b", 7)]


def test_table_ranks_by_mean_of_the_new_seeds_and_says_tie_within_two_standard_errors():
    trials = [trial("a", "completed", [0.30]), trial("b", "completed", [0.20])]
    trials += [trial(f"a{s}", "completed", [v], seed=s, **{RECHECK_KEY: "a"}) for s, v in ((1, 0.20), (2, 0.22))]
    trials += [trial(f"b{s}", "completed", [v], seed=s, **{RECHECK_KEY: "b"}) for s, v in ((1, 0.24), (2, 0.25))]
    rows = recheck_table(trials)
    # The search's own (selected, lucky) 0.30 is not in a's mean: b wins.
    assert [r.trial.trial_id for r in rows] == ["b", "a"]
    assert rows[0].mean == pytest.approx(0.245) and rows[0].se == pytest.approx(0.005)
    assert rows[1].search_value == 0.30 and rows[1].se == pytest.approx(0.01)
    # 0.245 - 0.21 = 0.035 > 2 * hypot(0.005, 0.01) = 0.0224: not a tie; closer means are.
    assert not is_tie(rows[0], rows[1])
    assert is_tie(RecheckRow(rows[0].trial, 0, [0.24, 0.25]), RecheckRow(rows[1].trial, 0, [0.23, 0.245]))
    assert math.isnan(RecheckRow(rows[0].trial, 0, [0.2]).se)
