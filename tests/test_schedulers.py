"""Search schedulers (``--scheduler``): the rungs printed are Ray's; re-check runs are never judged. A search under
each runs in the slow tests: ASHA (the shared study), Hyperband (the failing-trials study), fifo (the kill-and-resume
study)."""

import math

import pytest

from trainables.study.plan.search_plan import SchedulerPlan
from trainables.study.tune.schedulers import describe, make_trial_scheduler, rungs


@pytest.mark.parametrize("grace, rf, max_t", [(2, 2.0, 60), (1, 3.0, 8), (3, 2.5, 60), (10, 2.0, 8)])
def test_printed_rungs_are_where_ray_judges_trials(grace, rf, max_t):
    plan = SchedulerPlan("hyperband", grace, rf, max_t)
    scheduler = make_trial_scheduler(plan)
    for b, bracket in enumerate(scheduler._brackets):
        ray_rungs = sorted(math.ceil(m - 1e-9) for m, _ in bracket._rungs if m < max_t)
        assert rungs(min(grace, max_t) * rf**b, rf, max_t) == ray_rungs
    line = describe(SchedulerPlan("asha", grace, rf, max_t))
    assert line.startswith(f"scheduler asha (grace {grace}") and "rungs at epochs" in line


def test_asha_never_judges_a_re_check_run_nor_counts_it_at_its_rungs():
    """A re-check run in a free slot of the search runs to its end, and its (high) score at a rung does not raise the
    bar for the search trials still running."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from trainables.core.layout import RECHECK_KEY

    scheduler = make_trial_scheduler(SchedulerPlan("asha", 1, 2.0, 4))
    scheduler.set_search_properties("best_inner_ev", "max")
    search = [Trial("fn", config={"lr": lr}, stub=True) for lr in (0.1, 0.2)]
    rerun = Trial("fn", config={"lr": 0.3, RECHECK_KEY: "x"}, stub=True)
    for t in (*search, rerun):
        scheduler.on_trial_add(None, t)

    def at_rung(trial, value):
        return scheduler.on_trial_result(None, trial, {"training_iteration": 1, "best_inner_ev": value})

    assert at_rung(rerun, 0.9) == TrialScheduler.CONTINUE
    assert at_rung(search[0], 0.2) == TrialScheduler.CONTINUE
    # Beside the re-check run's 0.9 this would be stopped; beside the search trial's 0.2 it goes on.
    assert at_rung(search[1], 0.3) == TrialScheduler.CONTINUE
    assert at_rung(rerun, 0.0) == TrialScheduler.CONTINUE
    scheduler.on_trial_complete(None, rerun, {"training_iteration": 4, "best_inner_ev": 0.9})


def test_unknown_scheduler_lists_the_registry():
    with pytest.raises(ValueError, match="valid: asha, hyperband, fifo"):
        make_trial_scheduler(SchedulerPlan("median", 1, 2.0, 4))
    assert describe(SchedulerPlan("fifo", 1, 2.0, 60)).startswith("scheduler fifo: no early stopping")


def test_default_grace_period_scales_with_the_longest_recipe():
    from trainables.search import parse_args
    from trainables.study.plan import defaults

    assert parse_args(["--space", "vgg_depth"]).grace_period is None  # decided from the space's max_t
    for max_t in (1, 8, 16, 60):
        grace = defaults.grace_period(max_t)
        assert 1 <= grace <= max_t and grace == min(max_t, max(2, round(max_t * defaults.GRACE_FRACTION)))
    assert defaults.grace_period(60) > defaults.grace_period(8)  # the first rung moves with the recipe
    # One epoch of inner EV is mostly noise: the smoke profile's 8-epoch recipes are first judged at epoch 2.
    assert defaults.grace_period(8) == 2 and defaults.grace_period(1) == 1


def test_qmc_searcher_seeds_give_different_points():
    import optuna

    from trainables.study.tune.samplers import make_sampler

    def first_points(seed):
        study = optuna.create_study(sampler=make_sampler("qmc", seed))
        return [study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}).params["x"] for _ in range(4)]

    assert first_points(0) != first_points(1)
