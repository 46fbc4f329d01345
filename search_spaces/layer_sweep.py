"""Which layer of an ImageNet network reads out IT best, and is it the training that matters?

The report's task-driven rows and Figure 1: ridge (alpha by object-stratified CV inside
each trial) on the activations of one layer, pretrained vs. random weights.

- scientific: ``layer``, ``weights`` (imagenet / random)
- nuisance: ``feature_pool`` (average pool side before the readout), ``pca_components``
- fixed: the backbone: ResNet-50 when its ImageNet weights are in the torch cache (the
  report's exact sweep), else EfficientNet-Lite0, whose weights ship with its package,
  so that the pretrained-vs-random comparison runs on every machine
"""

from functools import lru_cache

from trainables.models.weights import WeightsNotFound, imagenet_checkpoint

SCIENTIFIC = "layer"
# The ladder's rows (trainables.ladder): one per weights and layer (the first axis outermost), each the best readout
# of it (Figure 1).
LADDER_AXES = ("weights", "layer")
LADDER_GROUP = "task-driven features"
# Readouts are cheap, and ImageNet features need more than 32 px: the smoke profile uses the
# real image count at 64 px.
PROFILE_HINTS = {"smoke": {"resolution": 64, "images_per_object": 50, "num_samples": 40}}
POINTS_TO_EVALUATE: list = []
# The layers swept per backbone (a subset of trainables.models.backbones.layer_names for deep ones).
SWEPT_LAYERS = {
    "resnet50": ["conv1", "layer1", "layer2", "layer3", "layer4", "avgpool"],
    "efficientnet_lite0": ["block1", "block3", "block5", "block8", "block12", "block16", "block18", "avgpool"],
}


@lru_cache(maxsize=1)
def sweep_backbone() -> str:
    """ResNet-50 if its ImageNet weights are cached here, else EfficientNet-Lite0."""
    try:
        imagenet_checkpoint("resnet50")
        return "resnet50"
    except WeightsNotFound:
        return "efficientnet_lite0"


def layer_sweep(trial, ctx) -> dict:
    backbone = sweep_backbone()
    trial.suggest_categorical("layer", SWEPT_LAYERS[backbone])
    fixed = ctx.suggest_weights(trial, backbone)
    trial.suggest_categorical("feature_pool", [1, 2, 4])
    trial.suggest_categorical("pca_components", [0, 256])
    return {"model": "ridge", "backbone": backbone, **fixed}
