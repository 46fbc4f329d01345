"""The study layer: a study planned, run on Ray Tune with Optuna and MLflow, re-checked, read back and exported.

Its parts, top to bottom (a part imports only from the parts below it; ``lint-imports`` checks it):

- :mod:`~trainables.study.run`: running a planned study on Ray: the runner and its phases, the Ray trial, the
  cluster, the study's lock, checkpoints, the live display, and the recovery of a resumed study;
- :mod:`~trainables.study.tune` | :mod:`~trainables.study.tracking` | :mod:`~trainables.study.export`: choosing
  and stopping trials (Optuna searchers and samplers, ASHA); MLflow runs; the export of the best config and the
  trials table;
- :mod:`~trainables.study.recheck`: the top-K re-check's statistics, rounds and table;
- :mod:`~trainables.study.records`: a study read from disk (Ray's trial folders, the Optuna study);
- :mod:`~trainables.study.plan`: what a study decided before it started, and what a run of it is given: the plan,
  defaults, profiles, the probed space, resources, pace and time budgets;
- :mod:`~trainables.study.result`: the contract of a trial's result (its keys, its epoch, how it ended).
"""
