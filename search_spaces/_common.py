"""Nuisance hyperparameters shared by several studies (decoder head, optimiser, schedule).

Each helper samples on an Optuna trial (define-by-run) and returns the config
entries it fixes or derives. Conditional parameters are sampled only where they
apply: momentum only for SGD, step size and gamma only for StepLR.
"""

from __future__ import annotations


def suggest_head(trial, widths=(256, 8192), depths=(1, 3), dropout=(0.0, 0.7), activations=None) -> dict:
    """Decoder MLP: width (log scale), depth, dropout, optionally activation. Returns ``head_hidden``."""
    width = trial.suggest_int("head_width", *widths, log=True)
    depth = trial.suggest_int("head_depth", *depths)
    trial.suggest_float("head_dropout", *dropout)
    if activations:
        trial.suggest_categorical("head_activation", list(activations))
    return {"head_hidden": [width] * depth}


def suggest_optimizer(trial, optimizers=("adam", "adamw", "sgd"), lr=(1e-5, 1e-2), weight_decay=(1e-7, 1e-2)) -> None:
    """Optimiser, learning rate and weight decay (log scale); momentum for SGD only."""
    name = trial.suggest_categorical("optimizer", list(optimizers))
    trial.suggest_float("lr", *lr, log=True)
    trial.suggest_float("weight_decay", *weight_decay, log=True)
    if name == "sgd":
        trial.suggest_float("momentum", 0.5, 0.99)


def suggest_step_schedule(trial, step_size=(5, 30), gamma=(0.1, 0.9)) -> dict:
    """StepLR: step size and decay factor."""
    trial.suggest_int("step_size", *step_size)
    trial.suggest_float("gamma", *gamma)
    return {"scheduler": "step"}


def suggest_schedule(trial, schedulers=("none", "step", "cosine", "plateau")) -> None:
    """Scheduler; StepLR's step size and gamma only when it is chosen."""
    name = trial.suggest_categorical("scheduler", list(schedulers))
    if name == "step":
        suggest_step_schedule(trial)


# The report's recipe (its Tables 2 and 3), shared by its two best models.
REPORT_SCHEDULE = {"scheduler": "step", "step_size": 15, "gamma": 0.5, "epochs": 60, "batch_size": 128}
