"""A study of one short and one long trial, for the test of re-check runs in the search's free slots.

Run as ``python tests/free_slot_space.py <search flags>``: it registers the space
``free_slot`` and runs the ordinary search command line. With two trials at once, the
short one completes while the long one runs, and its slot is free for the rest of the
search.
"""

import sys

import search_spaces

SCIENTIFIC = "long"
POINTS_TO_EVALUATE = [{"long": False}, {"long": True}]


def free_slot(trial, ctx) -> dict:
    long = trial.suggest_categorical("long", [False, True])
    # The long trial: 6 epochs of small batches through a wide network, many times the short one's single epoch.
    return {"backbone": "shallow_cnn", "head_hidden": [], "optimizer": "adam", "lr": 3e-3, "patience": None,
            **({"epochs": 6, "batch_size": 4, "width_mult": 4.0} if long else {"epochs": 1, "batch_size": 32})}


if __name__ == "__main__":
    free_slot.__module__ = __name__
    sys.modules[__name__].POINTS_TO_EVALUATE = POINTS_TO_EVALUATE
    search_spaces.SEARCH_SPACES["free_slot"] = free_slot
    from trainables.search import main

    sys.exit(main(sys.argv[1:]))
