"""Choosing and stopping trials: the Optuna searchers, Optuna's samplers (``--sampler``) and the trial schedulers
(``--scheduler``: ASHA, Hyperband, FIFO)."""
