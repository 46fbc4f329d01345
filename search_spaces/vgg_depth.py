"""How deep should a fine-tuned VGG11_BN be to predict IT?

- scientific: ``vgg_blocks`` (first k = 1..8 conv blocks of VGG11_BN)
- nuisance: decoder width, depth and dropout; optimiser, lr, weight decay;
  StepLR step and gamma; batch size
- fixed: ImageNet weights (random where they are missing in a smoke run), fully fine-tuned, ReLU head, 60 epochs, patience 7
"""

from search_spaces._common import suggest_head, suggest_optimizer, suggest_step_schedule

SCIENTIFIC = "vgg_blocks"
LADDER_GROUP = "fine-tuned"

# The report's best VGG (Table 2), evaluated first.
POINTS_TO_EVALUATE = [
    {"vgg_blocks": 5, "head_width": 7000, "head_depth": 2, "head_dropout": 0.47, "optimizer": "adamw",
     "lr": 1e-4, "weight_decay": 1e-5, "step_size": 15, "gamma": 0.5, "batch_size": 128},
]


def vgg_depth(trial, ctx) -> dict:
    trial.suggest_int("vgg_blocks", 1, 8)
    derived = suggest_head(trial)
    suggest_optimizer(trial, optimizers=("adam", "adamw"))
    derived.update(suggest_step_schedule(trial))
    trial.suggest_categorical("batch_size", [32, 64, 128])
    return {"backbone": "vgg11_bn", "weights": ctx.imagenet_or_random("vgg11_bn"), "trainable_blocks": None, "epochs": 60,
            "patience": 7, **derived}
