"""Backbone registry: name -> builder of a feature trunk.

A trunk is a :class:`Backbone`: an ``nn.Sequential`` of blocks mapping images
``(B, 3, H, W)`` (ImageNet-normalised, as stored) to a feature map
``(B, out_channels, h, w)``. Blocks are the unit of partial fine-tuning
(``trainable_blocks``) and of depth variants (VGG's first k conv blocks). Each
builder declares the input normalisation its weights expect; the trunk converts
the stored images to it, so callers never renormalise.

Each entry also names the trunk's readout layers, one per block, so that a layer
can be checked and counted without building the network: ResNets have ``conv1``
(the stem) and ``layer1`` .. ``layer4``; the others ``block1`` .. ``blockN``;
every trunk also reads out at ``avgpool`` (the global average of its last block).

Heavy imports (torchvision's models, efficientnet) happen only inside the chosen
builder, so that importing the registry costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from trainables.core.config import Field, validate_config
from trainables.models.weights import load_imagenet_state

# A builder takes the validated config; for ImageNet weights it asks trainables.models.weights (which looks at what
# the search shipped to this process first, then the torch cache).
Builder = Callable[[dict], "Backbone"]
IMAGENET_NORM = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF_NORM = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


class Backbone(nn.Module):
    """A feature trunk made of blocks, with the input normalisation its weights expect.

    Parameters
    ----------
    blocks : list of nn.Module
        Applied in order.
    out_channels : int
        Channels of the final feature map.
    norm : ((mean, mean, mean), (std, std, std))
        Normalisation of a 0..1 image that the weights were trained with.

    ``input_size`` (set from the config; 0: off) resizes the images before the first
    block: the scale at which the network sees the stimuli is a choice, and a network
    trained on 224-px ImageNet photographs need not see objects best at the stored size.
    """

    def __init__(self, blocks: list[nn.Module], out_channels: int, norm=IMAGENET_NORM):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = out_channels
        # Stored images are (x - m_in) / s_in; the weights want (x - m) / s.
        # That is one per-channel affine map: scale = s_in / s, shift = (m_in - m) / s.
        # The arithmetic runs on the CPU even while a network is built on the meta device for its shapes (the space
        # probe): meta arithmetic goes through torch's Python references, whose first use imports torch._dynamo
        # (seconds). as_tensor then puts the result where the network is being built.
        mean_in, std_in = (torch.tensor(v, device="cpu") for v in IMAGENET_NORM)
        mean, std = (torch.tensor(v, device="cpu") for v in norm)
        self.register_buffer("in_scale", torch.as_tensor(std_in / std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_shift", torch.as_tensor((mean_in - mean) / std).view(1, 3, 1, 1), persistent=False)
        self.renormalise = norm != IMAGENET_NORM
        self.frozen_blocks = 0
        self.input_size = 0

    def truncate(self, n_blocks: int) -> None:
        """Keep the first ``n_blocks`` blocks; ``out_channels`` becomes the last kept block's."""
        self.blocks = self.blocks[:n_blocks]
        # Channel counts are not uniform attributes across block types (MBConv, ResNet stages): ask the blocks.
        with torch.no_grad():
            self.out_channels = int(self.blocks.eval()(torch.zeros(1, 3, 64, 64)).shape[1])

    def set_trainable_blocks(self, n: int | None) -> None:
        """Fine-tune all blocks (None), none (0) or only the last ``n``."""
        total = len(self.blocks)
        self.frozen_blocks = 0 if n is None else max(total - n, 0)
        for i, block in enumerate(self.blocks):
            for p in block.parameters():
                p.requires_grad_(i >= self.frozen_blocks)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        # Frozen blocks keep their batch-norm statistics and skip dropout.
        for block in list(self.blocks)[: self.frozen_blocks]:
            block.eval()
        return self

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Stored images ``(B, 3, H, W)`` -> what the first block takes: resized to ``input_size``, renormalised."""
        if self.input_size and x.shape[-2:] != (self.input_size, self.input_size):
            # Antialiased, so that shrinking a 224-px image gives what rendering it smaller would (no aliasing).
            x = nn.functional.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear",
                                          align_corners=False, antialias=True)
        if self.renormalise:
            x = x * self.in_scale.to(x.dtype) + self.in_shift.to(x.dtype)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.prepare(x))


def build_shallow_cnn(config: dict) -> Backbone:
    """The report's four-block CNN: 3x3 conv, ReLU, 2x2 max-pool; 16-32-64-128 channels x width_mult."""
    if config["weights"] == "imagenet":
        load_imagenet_state("shallow_cnn")  # raises: it has none
    widths = [max(1, round(c * config["width_mult"])) for c in (16, 32, 64, 128)]
    blocks, c_in = [], 3
    for c in widths:
        blocks.append(nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)))
        c_in = c
    return Backbone(blocks, c_in)


def build_vgg11_bn(config: dict) -> Backbone:
    """VGG11_BN truncated after its first ``vgg_blocks`` conv blocks (conv-BN-ReLU, with the pools before it)."""
    from torchvision.models.vgg import (  # lazy registry: only the chosen builder pays for imports
        cfgs,
        make_layers,
    )

    # The conv layers alone: torchvision's whole VGG would also draw its 120M-parameter classifier (about 2 s on a
    # CPU core) only to drop it. Initialised as torchvision initialises them.
    features = make_layers(cfgs["A"], batch_norm=True)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if config["weights"] == "imagenet":
        state = load_imagenet_state("vgg11_bn")
        features.load_state_dict({k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")})
    blocks, pending = [], []
    for layer in features:
        pending.append(layer)
        if isinstance(layer, nn.ReLU):
            blocks.append(nn.Sequential(*pending))
            pending = []
    kept = blocks[: config["vgg_blocks"]]
    return Backbone(kept, kept[-1][-3].out_channels)  # [-3]: the block's conv, before BN and ReLU


def _resnet(arch: str, out_channels: int) -> Builder:
    def build(config: dict) -> Backbone:
        import torchvision  # lazy registry: only the chosen builder pays for its imports

        model = getattr(torchvision.models, arch)(weights=None)
        if config["weights"] == "imagenet":
            model.load_state_dict(load_imagenet_state(arch))
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        return Backbone([stem, model.layer1, model.layer2, model.layer3, model.layer4], out_channels)

    build.__doc__ = f"torchvision {arch}: stem, layer1..layer4."
    return build


def _torchvision_features(arch: str, out_channels: int, split_on_relu: bool = False) -> Builder:
    def build(config: dict) -> Backbone:
        import torchvision  # lazy registry: only the chosen builder pays for its imports

        model = getattr(torchvision.models, arch)(weights=None)
        if config["weights"] == "imagenet":
            model.load_state_dict(load_imagenet_state(arch))
        if split_on_relu:  # AlexNet's features are a flat list: one block per conv (+ its pool)
            layers = list(model.features)[:-1]  # the head's adaptive pool replaces the last max-pool
            for layer in layers:
                if isinstance(layer, nn.MaxPool2d):
                    layer.ceil_mode = True  # same sizes at 224 px, and no empty maps at 32 px
            blocks, pending = [], []
            for layer in layers:
                if isinstance(layer, nn.Conv2d) and pending:
                    blocks.append(nn.Sequential(*pending))
                    pending = []
                pending.append(layer)
            blocks.append(nn.Sequential(*pending))
        else:
            blocks = list(model.features)
        return Backbone(blocks, out_channels)

    build.__doc__ = f"torchvision {arch}: the stages of its ``features``."
    return build


class _LiteBlock(nn.Module):
    """An EfficientNet-Lite MBConv block with its drop-connect rate bound (the package passes it in forward)."""

    def __init__(self, block: nn.Module, drop_connect_rate: float):
        super().__init__()
        self.block, self.rate = block, drop_connect_rate

    def forward(self, x):
        return self.block(x, drop_connect_rate=self.rate)


def build_efficientnet_lite0(config: dict) -> Backbone:
    """EfficientNet-Lite0 (efficientnet-lite-pytorch): stem, 16 MBConv blocks, head conv; inputs (x-0.5)/0.5."""
    from efficientnet_lite_pytorch import EfficientNet  # lazy registry, as above

    model = EfficientNet.from_name("efficientnet-lite0")
    if config["weights"] == "imagenet":
        model.load_state_dict(load_imagenet_state("efficientnet_lite0"))
    act = model._swish
    n = len(model._blocks)
    rate = model._global_params.drop_connect_rate or 0.0
    blocks = [nn.Sequential(model._conv_stem, model._bn0, act)]
    blocks += [_LiteBlock(b, rate * i / n) for i, b in enumerate(model._blocks)]
    blocks.append(nn.Sequential(model._conv_head, model._bn1, act))
    return Backbone(blocks, model._bn1.num_features, norm=HALF_NORM)


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry: the builder, and the readout layers of its blocks (in order, ``avgpool`` not included)."""

    build: Builder
    layers: tuple[str, ...]


def _blocks(n: int) -> tuple[str, ...]:
    return tuple(f"block{i}" for i in range(1, n + 1))


_RESNET_LAYERS = ("conv1", "layer1", "layer2", "layer3", "layer4")
BACKBONES: dict[str, BackboneSpec] = {
    "shallow_cnn": BackboneSpec(build_shallow_cnn, _blocks(4)),
    "vgg11_bn": BackboneSpec(build_vgg11_bn, _blocks(8)),
    "resnet18": BackboneSpec(_resnet("resnet18", 512), _RESNET_LAYERS),
    "resnet34": BackboneSpec(_resnet("resnet34", 512), _RESNET_LAYERS),
    "resnet50": BackboneSpec(_resnet("resnet50", 2048), _RESNET_LAYERS),
    "resnet101": BackboneSpec(_resnet("resnet101", 2048), _RESNET_LAYERS),
    "alexnet": BackboneSpec(_torchvision_features("alexnet", 256, split_on_relu=True), _blocks(5)),
    "convnext_tiny": BackboneSpec(_torchvision_features("convnext_tiny", 768), _blocks(8)),
    "efficientnet_b0": BackboneSpec(_torchvision_features("efficientnet_b0", 1280), _blocks(9)),
    "efficientnet_lite0": BackboneSpec(build_efficientnet_lite0, _blocks(18)),
}


def check_backbone(name: str) -> None:
    """Raise ``ValueError`` listing the registry when ``name`` is not in it."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone '{name}' (valid: {', '.join(BACKBONES)})")


def layer_names(backbone: str) -> list[str]:
    """Readout layers of a registry backbone, shallow to deep, ending with ``avgpool``."""
    check_backbone(backbone)
    return [*BACKBONES[backbone].layers, "avgpool"]


def block_count(backbone: str, layer: str, n_blocks: int | None = None) -> int:
    """Blocks of the trunk to run to read ``layer`` (all ``n_blocks`` of a shortened trunk for ``avgpool``).

    Raises
    ------
    ValueError
        Naming the valid layers, when ``layer`` is not one of the backbone's (or lies beyond ``n_blocks``).
    """
    names = list(BACKBONES[backbone].layers)[: n_blocks]
    if layer == "avgpool":
        return len(names)
    if layer not in names:
        raise ValueError(f"{backbone} has no layer '{layer}' (valid: {', '.join(names)}, avgpool)")
    return names.index(layer) + 1


# The config keys of a backbone: every family that runs one (a network, a readout of a layer) declares these.
BACKBONE_FIELDS: dict[str, Field] = {
    "backbone": Field((str,), "shallow_cnn", help="a name in BACKBONES"),
    "weights": Field((str,), "random", ("random", "imagenet"), help="the backbone's initial weights"),
    "vgg_blocks": Field((int,), 5, ge=1, le=8, help="vgg11_bn: keep the first k conv blocks"),
    "width_mult": Field((int, float), 1.0, gt=0, le=16, help="shallow_cnn: channel multiplier of 16-32-64-128"),
    "trunk_layer": Field((str,), "avgpool", help="cut the trunk after this readout layer; avgpool: whole"),
    "trainable_blocks": Field((int, type(None)), None, ge=0,
                              help="null: fine-tune all; 0: frozen; n: only the last n blocks"),
    "input_size": Field((int,), 0, ge=32, le=1024, off=0,
                        help="resize the images to this side before the trunk"),
}


def backbone_config(**keys) -> dict:
    """A complete backbone config: ``keys`` checked against :data:`BACKBONE_FIELDS`, the rest at their defaults.

    Raises
    ------
    ConfigError
        A key that is not a backbone's, or a value out of its range.
    """
    return validate_config(keys, BACKBONE_FIELDS)


def build_backbone(config: dict) -> Backbone:
    """Build the trunk named by ``config['backbone']`` with its weights, depth and trainable blocks.

    ImageNet weights come from :func:`trainables.models.weights.load_imagenet_state`.
    """
    check_backbone(config["backbone"])
    trunk = BACKBONES[config["backbone"]].build(config)
    if config["trunk_layer"] != "avgpool":
        trunk.truncate(block_count(config["backbone"], config["trunk_layer"], len(trunk.blocks)))
    trunk.set_trainable_blocks(config["trainable_blocks"])
    trunk.input_size = config["input_size"]
    return trunk
