"""Search schedulers (``--scheduler``): the rungs we print are Ray's, and fifo stops nothing."""

import collections
import csv
import math

import pytest

from searchutil import TINY, optuna_states, run_search
from trainables.schedulers import SCHEDULERS, describe, make_scheduler, rungs


@pytest.mark.parametrize("grace, rf, max_t", [(2, 2.0, 60), (1, 3.0, 8), (3, 2.5, 60), (10, 2.0, 8)])
def test_printed_rungs_are_where_ray_judges_trials(grace, rf, max_t):
    settings = {"scheduler": "hyperband", "grace_period": grace, "reduction_factor": rf, "max_t": max_t}
    scheduler = make_scheduler(settings)
    for b, bracket in enumerate(scheduler._brackets):
        ray_rungs = sorted(math.ceil(m - 1e-9) for m, _ in bracket._rungs if m < max_t)
        assert rungs(min(grace, max_t) * rf**b, rf, max_t) == ray_rungs
    line = describe({**settings, "scheduler": "asha"})
    assert line.startswith(f"scheduler asha (grace {grace}") and "rungs at epochs" in line


def test_unknown_scheduler_lists_the_registry():
    with pytest.raises(ValueError, match="valid: asha, hyperband, fifo"):
        make_scheduler({"scheduler": "median", "max_t": 4, "grace_period": 1, "reduction_factor": 2.0})
    assert describe({"scheduler": "fifo", "max_t": 60}).startswith("scheduler fifo: no early stopping")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_each_scheduler_runs_a_search(tmp_path, name):
    storage = tmp_path / "runs"
    done = run_search("--space", "shallow_cnn", "--scheduler", name, "--storage", str(storage), "--num-samples", "4",
                      "--max-epochs", "3", "--grace-period", "1", "--reduction-factor", "3", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"scheduler {name}" in done.stderr
    with open(storage / "shallow_cnn" / "trials.csv") as f:
        trials = list(csv.DictReader(f))
    statuses = collections.Counter(t["status"] for t in trials)
    assert len(trials) == 4 and statuses["failed"] == 0
    if name == "fifo":  # nothing stopped early: every trial ran its 3 epochs and is COMPLETE in Optuna
        assert statuses["completed"] == 4 and {t["epochs"] for t in trials} == {"3"}
        assert set(optuna_states(storage, "shallow_cnn").values()) == {"COMPLETE"}
