"""Decoder heads: feature map -> site responses.

:data:`HEADS` maps the config's ``head`` to a class; every head takes the same
arguments (channels in, sites out, ``head_pool``, ``head_hidden``, ``head_dropout``,
``head_activation``), so a head is a value a search can sample like any other.
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.core.config import Field
from trainables.models.backbones import build_backbone

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU, "silu": nn.SiLU}

# The config keys of a decoder head (the network family declares them).
HEAD_FIELDS: dict[str, Field] = {
    "head": Field((str,), "mlp", ("mlp", "factorized"), help="decoder head"),
    "head_pool": Field((int,), 1, ge=1, le=32, help="pool side before the head"),
    "head_hidden": Field((list,), [], ge=1, le=65_536,
                         help="hidden widths (mlp) or 1 x 1 convolutions' widths (factorized)"),
    "head_dropout": Field((int, float), 0.0, ge=0, lt=1, help="dropout after each hidden layer of the head"),
    "head_activation": Field((str,), "relu", tuple(ACTIVATIONS), help="activation of the head's hidden layers"),
}


def hidden_stack(width: int, hidden, dropout: float, activation: str, layer) -> tuple[list[nn.Module], int]:
    """Hidden layers shared by the heads: per width in ``hidden``, ``layer(width_in, width_out)`` (a list of
    modules), the activation and dropout. Returns the modules and the last width."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{activation}' (valid: {', '.join(ACTIVATIONS)})")
    modules: list[nn.Module] = []
    for h in hidden:
        modules += [*layer(width, h), ACTIVATIONS[activation](), nn.Dropout(dropout)]
        width = h
    return modules, width


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
        layers, width = hidden_stack(in_channels * pool * pool, hidden, dropout, activation,
                                     lambda i, o: [nn.Linear(i, o)])
        self.mlp = nn.Sequential(nn.AdaptiveAvgPool2d(pool), nn.Flatten(), *layers, nn.Linear(width, n_outputs))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features)


class FactorizedHead(nn.Module):
    """A factorized readout (Klindt et al. 2017, NeurIPS): each site weighs space and channels separately.

    The map is average-pooled to ``pool x pool``, passed through ``hidden`` 1 x 1
    convolutions (each with batch norm, the activation and dropout; shared by all
    sites), and each site's response is ``sum_{c,p} w_sc m_sp f_cp + b_s``: a
    spatial mask ``m_s`` over the ``pool**2`` positions times channel weights
    ``w_s``. That is the form of a receptive field (where) times a tuning (what),
    with ``pool**2 + C`` weights per site where a linear layer on the flattened map
    needs ``pool**2 * C``; the masks start as a global average, so the first steps
    train like the global-pool readout.

    Parameters
    ----------
    in_channels : int
    n_outputs : int
        Number of sites.
    pool : int
        Side of the pooled map the masks cover.
    hidden : list of int
        Widths of the shared 1 x 1 convolutions.
    dropout : float
    activation : str
        Key of :data:`ACTIVATIONS`.

    Shapes: ``(B, in_channels, h, w) -> (B, n_outputs)``.
    """

    def __init__(self, in_channels: int, n_outputs: int, pool: int = 1, hidden=(), dropout=0.0, activation="relu"):
        super().__init__()
        layers, width = hidden_stack(in_channels, hidden, dropout, activation,
                                     lambda i, o: [nn.Conv2d(i, o, 1), nn.BatchNorm2d(o)])
        self.core = nn.Sequential(nn.AdaptiveAvgPool2d(pool), *layers)
        self.spatial = nn.Parameter(torch.full((n_outputs, pool * pool), 1.0 / (pool * pool)))
        self.channel = nn.Parameter(torch.randn(n_outputs, width) / width**0.5)
        self.bias = nn.Parameter(torch.zeros(n_outputs))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        maps = self.core(features).flatten(2)  # (B, C, P)
        per_site = maps @ self.spatial.to(maps.dtype).t()  # (B, C, S): each site's mask applied to every channel
        return (per_site * self.channel.to(maps.dtype).t()).sum(1) + self.bias.to(maps.dtype)


HEADS: dict[str, type[nn.Module]] = {"mlp": DecoderHead, "factorized": FactorizedHead}


def build_head(config: dict, in_channels: int, n_sites: int) -> nn.Module:
    """The decoder head a validated config names (``config['head']``), reading ``in_channels``-channel maps."""
    return HEADS[config["head"]](in_channels, n_sites, config["head_pool"], config["head_hidden"],
                                 config["head_dropout"], config["head_activation"])


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


def build_model(config: dict, n_sites: int) -> EncodingModel:
    """The encoding model a validated config describes: its backbone (:func:`build_backbone`) and decoder head."""
    backbone = build_backbone(config)
    return EncodingModel(backbone, build_head(config, backbone.out_channels, n_sites), n_sites)
