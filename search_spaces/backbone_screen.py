"""Which ImageNet backbone, pretrained or not, frozen or fine-tuned, predicts IT best?

- scientific: ``backbone`` (every registry entry), ``weights`` (imagenet / random, sampled
  only for backbones whose ImageNet weights this search can load: never a pair that cannot
  exist, such as the shallow CNN pretrained), ``trainable_blocks`` (0 = frozen, null = fine-tuned)
- nuisance: lr
- fixed: small decoder (512 hidden, dropout 0.3), AdamW, weight decay 1e-5,
  StepLR 15 / 0.5, batch 64, 30 epochs, patience 7
"""

from trainables.models.backbones import BACKBONES

SCIENTIFIC = "backbone"
# Evaluated first: fine-tuned from ImageNet, EfficientNet-Lite0 (its weights ship with its package, so this
# runs pretrained on every machine) and the report's ResNet-34.
POINTS_TO_EVALUATE = [
    {"backbone": "efficientnet_lite0", "weights": "imagenet", "tuning": "fine-tuned", "lr": 3e-4},
    {"backbone": "resnet34", "weights": "imagenet", "tuning": "fine-tuned", "lr": 1e-4},
]


def backbone_screen(trial, ctx) -> dict:
    backbone = trial.suggest_categorical("backbone", list(BACKBONES))
    fixed = ctx.suggest_weights(trial, backbone)
    tuning = trial.suggest_categorical("tuning", ["frozen", "fine-tuned"])
    trial.suggest_float("lr", 1e-5, 3e-3, log=True)
    return {**fixed, "trainable_blocks": 0 if tuning == "frozen" else None, "head_hidden": [512], "head_dropout": 0.3,
            "optimizer": "adamw", "weight_decay": 1e-5, "scheduler": "step", "step_size": 15, "gamma": 0.5,
            "batch_size": 64, "epochs": 30, "patience": 7}
