"""A study whose trials sometimes diverge, for the failure-handling test.

Run as ``python tests/flaky_space.py <search flags>``: it registers the space
``flaky`` and runs the ordinary search command line.
"""

import sys

import search_spaces

SCIENTIFIC = "explode"
# One diverging trial and one sound one, tried first whatever the sampler does.
POINTS_TO_EVALUATE = [{"explode": True}, {"explode": False}]


def flaky(trial, ctx) -> dict:
    explode = trial.suggest_categorical("explode", [True, False])
    fixed = {"backbone": "shallow_cnn", "head_hidden": [], "batch_size": 32, "epochs": 60}
    if explode:  # SGD at an absurd rate: the loss overflows within an epoch or two
        return {**fixed, "optimizer": "sgd", "lr": 1e8, "momentum": 0.9}
    return {**fixed, "optimizer": "adam", "lr": 3e-3}


if __name__ == "__main__":
    flaky.__module__ = __name__
    sys.modules[__name__].POINTS_TO_EVALUATE = POINTS_TO_EVALUATE
    search_spaces.SEARCH_SPACES["flaky"] = flaky
    from trainables.search import main

    sys.exit(main(sys.argv[1:]))
