"""Which ImageNet backbone, pretrained or not, frozen or fine-tuned, predicts IT best?

- scientific: ``backbone`` (every registry entry), ``weights`` (imagenet / random),
  ``trainable_blocks`` (0 = frozen, null = fine-tuned)
- nuisance: lr
- fixed: small decoder (512 hidden, dropout 0.3), AdamW, weight decay 1e-5,
  StepLR 15 / 0.5, batch 64, 30 epochs, patience 7
"""

from trainables.backbones import BACKBONES

SCIENTIFIC = "backbone"
POINTS_TO_EVALUATE: list = []


def backbone_screen(trial) -> dict:
    trial.suggest_categorical("backbone", list(BACKBONES))
    trial.suggest_categorical("weights", ["imagenet", "random"])
    tuning = trial.suggest_categorical("tuning", ["frozen", "fine-tuned"])
    trial.suggest_float("lr", 1e-5, 3e-3, log=True)
    return {"trainable_blocks": 0 if tuning == "frozen" else None, "head_hidden": [512], "head_dropout": 0.3,
            "optimizer": "adamw", "weight_decay": 1e-5, "scheduler": "step", "step_size": 15, "gamma": 0.5,
            "batch_size": 64, "epochs": 30, "patience": 7}
