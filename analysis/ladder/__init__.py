"""The ladder's analysis: the final trainings of every rung as the report's Table 1 and Figures 1-3.

``python -m trainables.ladder`` trains each rung (the best config for one value of a
study's ladder axes) over seeds and hands the runs here, as the data classes of
:mod:`analysis.ladder.rungs`. The modules, each with one job:

- :mod:`~analysis.ladder.rungs`: the input (runs, rungs, the validation set, ensembles);
- :mod:`~analysis.ladder.stats`: the statistics, pure numpy (EV, Corr, ceiled EV, the bootstrap over
  validation objects, paired differences, ensemble gains);
- :mod:`~analysis.ladder.rows`: Table 1's rows, in order, with their statistics;
- :mod:`~analysis.ladder.table`: ``table.md``, ``table.csv`` and the terminal's table;
- :mod:`~analysis.ladder.sites`: ``sites.csv`` (per site, across rows) and a row's best and worst sites;
- :mod:`~analysis.ladder.figures`: ``layers.png``, ``sites.png``, ``rdms.png``;
- :mod:`~analysis.ladder.page`: ``index.html``;
- :mod:`~analysis.ladder.output`: all of them into one folder, in one call.
"""
