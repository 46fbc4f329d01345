"""What decoder on a fine-tuned ResNet-34 predicts IT best?

- scientific: decoder width (256-8192), depth (1-3), dropout (0-0.7), activation
- nuisance: optimiser, lr, weight decay, scheduler (StepLR step / gamma when chosen), batch size
- fixed: ResNet-34 with ImageNet weights (random where they are missing in a smoke run), fully fine-tuned, 60 epochs, patience 10
"""

from search_spaces._common import suggest_head, suggest_optimizer, suggest_schedule

SCIENTIFIC = "head_width"
LADDER_GROUP = "fine-tuned"
# The report's best model (Table 3), evaluated first.
POINTS_TO_EVALUATE = [
    {"head_width": 7000, "head_depth": 2, "head_dropout": 0.52, "head_activation": "relu", "optimizer": "adam",
     "lr": 1e-4, "weight_decay": 1e-5, "scheduler": "step", "step_size": 15, "gamma": 0.5, "batch_size": 128},
]


def decoder_head(trial, ctx) -> dict:
    derived = suggest_head(trial, activations=("relu", "gelu", "elu", "silu"))
    suggest_optimizer(trial)
    suggest_schedule(trial)
    trial.suggest_categorical("batch_size", [32, 64, 128, 256])
    return {"backbone": "resnet34", "weights": ctx.imagenet_or_random("resnet34"), "trainable_blocks": None, "epochs": 60,
            "patience": 10, **derived}
