"""Decoder heads: feature map -> site responses."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU, "silu": nn.SiLU}


class DecoderHead(nn.Module):
    """Adaptive average pool to ``pool x pool``, then an MLP to the sites.

    The report's heads are configs of this: ``hidden=[7000, 7000], dropout=0.52``
    (ResNet-34), ``dropout=0.47`` (VGG11_BN), and ``hidden=[]`` for the shallow
    CNN's linear readout of its global average pool.

    Parameters
    ----------
    in_channels : int
    n_outputs : int
        Number of sites.
    pool : int
        Output side of the adaptive average pool.
    hidden : list of int
        Hidden widths, each followed by the activation and dropout.
    dropout : float
    activation : str
        Key of :data:`ACTIVATIONS`.

    Shapes: ``(B, in_channels, h, w) -> (B, n_outputs)``.
    """

    def __init__(self, in_channels: int, n_outputs: int, pool: int = 1, hidden=(), dropout=0.0, activation="relu"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation '{activation}' (valid: {', '.join(ACTIVATIONS)})")
        layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(pool), nn.Flatten()]
        width = in_channels * pool * pool
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation](), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_outputs))
        self.mlp = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


class EncodingModel(nn.Module):
    """Backbone followed by a decoder head: images ``(B, 3, H, W)`` -> responses ``(B, n_sites)``.

    The head predicts per-site z-scores (so every site weighs the same in the
    loss); ``forward`` maps them back to firing rates with the training set's
    per-site mean and standard deviation, kept as buffers so a saved model
    predicts rates on its own.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module, n_sites: int):
        super().__init__()
        self.backbone, self.head = backbone, head
        self.register_buffer("rate_mean", torch.zeros(n_sites))
        self.register_buffer("rate_std", torch.ones(n_sites))

    def forward_standardized(self, images: torch.Tensor) -> torch.Tensor:
        """Per-site z-scores, shape (B, n_sites)."""
        return self.head(self.backbone(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_standardized(images).float() * self.rate_std + self.rate_mean


def build_model(config: dict, n_sites: int, imagenet_state: dict | None = None) -> EncodingModel:
    """The encoding model a validated config describes (``imagenet_state``: see :func:`build_backbone`)."""
    from trainables.backbones import build_backbone

    backbone = build_backbone(config, imagenet_state)
    head = DecoderHead(
        backbone.out_channels, n_sites, config["head_pool"], config["head_hidden"],
        config["head_dropout"], config["head_activation"],
    )  # fmt: skip
    return EncodingModel(backbone, head, n_sites)
