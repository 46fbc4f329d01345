"""How well does a small CNN trained from scratch predict IT, once tuned?

- scientific: ``width_mult`` (channels 16-32-64-128 times 0.5..4)
- nuisance: lr, weight decay, batch size
- fixed: the report's four blocks with global average pool and a linear readout,
  Adam, no scheduler, 60 epochs, patience 10
"""

SCIENTIFIC = "width_mult"
LADDER_GROUP = "trained from scratch"
POINTS_TO_EVALUATE = [{"width_mult": 1.0, "lr": 3e-3, "weight_decay": 1e-6, "batch_size": 32}]


def shallow_cnn(trial, ctx) -> dict:
    trial.suggest_float("width_mult", 0.5, 4.0, log=True)
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    trial.suggest_float("weight_decay", 1e-7, 1e-3, log=True)
    trial.suggest_categorical("batch_size", [16, 32, 64, 128])
    return {"backbone": "shallow_cnn", "weights": "random", "head_hidden": [], "optimizer": "adam",
            "scheduler": "none", "epochs": 60, "patience": 10}
