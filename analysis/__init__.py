"""Reading finished studies and final trainings for people: the export command, the report page, the comparison
of trained models, and the figures they draw in one style (the metrics are :mod:`trainables.core.metrics`)."""
