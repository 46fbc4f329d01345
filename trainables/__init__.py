"""Data, models, the training core, the Ray glue and the command-line entry points."""
