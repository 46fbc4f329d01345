"""A study read from disk, without a Ray cluster: Ray's trial folders and the Optuna study."""
