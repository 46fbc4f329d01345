"""Which ResNet depth predicts IT best under one fixed decoder?

- scientific: ``backbone`` (resnet18 / 34 / 50 / 101)
- nuisance: lr, weight decay
- fixed: ImageNet weights (random where they are missing in a smoke run), fine-tuned, decoder 1024 hidden units with dropout 0.5,
  Adam, StepLR 15 / 0.5, batch 128, 60 epochs, patience 10
"""

from search_spaces._common import REPORT_SCHEDULE

SCIENTIFIC = "backbone"
POINTS_TO_EVALUATE = [{"backbone": "resnet34", "lr": 1e-4, "weight_decay": 1e-5}]


def resnet_depth(trial, ctx) -> dict:
    backbone = trial.suggest_categorical("backbone", ["resnet18", "resnet34", "resnet50", "resnet101"])
    trial.suggest_float("lr", 1e-5, 1e-3, log=True)
    trial.suggest_float("weight_decay", 1e-7, 1e-3, log=True)
    return {"weights": ctx.imagenet_or_random(backbone), "head_hidden": [1024], "head_dropout": 0.5, "optimizer": "adam",
            "patience": 10, **REPORT_SCHEDULE}
