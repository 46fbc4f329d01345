"""What a study still costs: its pace, the time left, the ASHA expectation, and the time budget's decisions (quick)."""

import pytest

from trainables.study.plan.pace import Budget, Pace, makespan, measure, minutes, parse_duration, race_s
from trainables.study.plan.search_plan import SchedulerPlan
from trainables.study.tune.schedulers import expected_epochs


def test_the_pace_reads_epochs_past_the_first_and_the_rest_as_each_trial_s_fixed_cost():
    # Two trials: 3 epochs of 2 s after a first one that also held 5 s of set-up; the wall clock says so.
    pace = measure([(4, 2.0, 5 + 4 * 2.0), (2, 2.0, 5 + 2 * 2.0)])
    assert pace == Pace(2.0, 5.0) and pace.trial(6) == 17.0
    assert measure([]) is None
    # Before any trial is past its first epoch, an epoch counts its share of the wall time.
    assert measure([(1, 7.0, 7.0)]) == Pace(7.0, 0.0)


def test_the_time_left_fills_each_slot_as_it_frees_up():
    pace = Pace(epoch_s=10.0, trial_s=0.0)
    # Two slots: one trial with 1 epoch left, one with 3; three new trials of 2 epochs: the first free slot takes
    # the next trial each time.
    assert makespan([1 * 10.0, 3 * 10.0], [pace.trial(2.0)] * 3, 2) == pytest.approx(50.0)
    assert makespan([], [pace.trial(2.0)] * 3, 2) == pytest.approx(40.0)  # two waves, not 1.5
    assert race_s(pace, 3, 6, 2) == pytest.approx(120.0)


def test_runs_of_different_lengths_take_the_slots_in_order():
    # Two slots, one busy for 10 s more: runs of 100, 30 and 30 s start as slots free up (0, 10, 40 s).
    assert makespan([10.0], [100.0, 30.0, 30.0], 2) == pytest.approx(100.0)
    assert makespan([], [30.0, 30.0, 100.0], 2) == pytest.approx(130.0)  # the long one starts last
    assert makespan([], [], 2) == 0.0


@pytest.mark.parametrize("plan, expected", [
    (SchedulerPlan("fifo", 2, 3.0, 8), 8.0),
    (SchedulerPlan("asha", 2, 3.0, 8), 2 + 4 / 3 + 2 / 9),  # rungs at 2 and 6: a third passes each
    (SchedulerPlan("asha", 1, 2.0, 4), 1 + 1 / 2 + 2 / 4),
])
def test_the_expected_epochs_of_a_trial_under_asha(plan, expected):
    assert expected_epochs(plan) == pytest.approx(expected)


def test_the_budget_starts_a_trial_only_when_it_and_a_first_recheck_round_still_fit():
    pace = Pace(epoch_s=10.0, trial_s=5.0)
    budget = Budget(deadline=1000.0, epochs_per_trial=3.0, max_epochs=6, recheck_top=2, concurrency=2, closing_s=15)
    # A trial: 35 s; a round of 2 runs of 6 epochs on 2 slots: 65 s; closing 15 s.
    assert budget.fits_trial(pace, 1000 - 115) and not budget.fits_trial(pace, 1000 - 114)
    assert budget.round_s(pace, 3) == pytest.approx(130.0)
    # The best config so far took 20 s an epoch: the round waits for its run (4 + 6 x 20 = 124 s), so the same
    # trial no longer fits.
    leaders = [Pace(epoch_s=20.0, trial_s=4.0)]
    assert budget.round_s(pace, 2, leaders) == pytest.approx(124.0)
    assert not budget.fits_trial(pace, 1000 - 115, leaders) and budget.fits_trial(pace, 1000 - 174, leaders)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("45", 45)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "0m", "m30", "-5m", ""])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_minutes_read_as_people_say_them():
    assert (minutes(45), minutes(192), minutes(3900)) == ("45 s", "3.2 min", "1 h 05 min")
