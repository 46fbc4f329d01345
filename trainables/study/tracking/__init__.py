"""MLflow, from the driver only: the tracking store, a search's parent run, its trials' runs, final trainings' runs."""
