"""Activations of fixed networks for ridge readouts, computed once and cached on disk.

A layer is one of the backbone's readout layers
(:func:`trainables.models.backbones.layer_names`); ``pixels`` is the image itself.

Cache entries live in ``<storage>/features/<key>.npy`` with a ``.json`` beside it
holding the shape and a checksum; the key is a hash of (backbone, weights, layer,
pool, data fingerprint, part of the data, and ``input_size`` where set): the
fingerprint stands for the data's images at their stored resolution. A partial or
corrupted entry fails its checksum and is recomputed, never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainables.core.devices import default_device
from trainables.models.backbones import BACKBONE_FIELDS, backbone_config, block_count, build_backbone

log = logging.getLogger(__name__)
PARTS = ("train", "val", "test")
RANDOM_WEIGHTS_SEED = 0


def _pool_of(layer: str, pool: int) -> int:
    """The pool size a layer's features actually use: avgpool is always the global average."""
    return 1 if layer == "avgpool" else pool


def _pool(maps: torch.Tensor, pool: int) -> torch.Tensor:
    """(B, C, h, w) -> (B, F): adaptive average pool to pool x pool, or flatten (pool 0)."""
    if pool > 0:
        maps = nn.functional.adaptive_avg_pool2d(maps, pool)
    return maps.flatten(1)


@torch.no_grad()
def compute_layers(backbone: str, weights: str, layers: list[str], pool: int, images: np.ndarray,
                   device: torch.device, batch: int = 64, input_size: int = 0) -> dict[str, np.ndarray]:
    """Activations of several layers in one pass.

    Parameters
    ----------
    images : array, shape (N, 3, H, W), ImageNet-normalised
    input_size : int
        Side the images are resized to before the trunk (config key ``input_size``); 0: as stored.

    Returns
    -------
    dict layer -> array (N, F), float32
    """
    # Random weights are drawn from a fixed seed, so a cached entry and a recomputed one agree.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        # The whole trunk (VGG's eight blocks, not a config's first k): a readout may read any of its layers.
        trunk = build_backbone(backbone_config(backbone=backbone, weights=weights, input_size=input_size,
                                               vgg_blocks=BACKBONE_FIELDS["vgg_blocks"].le))
    trunk = trunk.to(device).eval()
    n_blocks = len(trunk.blocks)
    depth = {layer: block_count(backbone, layer, n_blocks) for layer in layers}
    out = {layer: [] for layer in layers}
    for start in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[start : start + batch])).to(device)
        x = trunk.prepare(x)
        for k, block in enumerate(trunk.blocks, start=1):
            x = block(x)
            for layer, d in depth.items():
                if d == k:
                    out[layer].append(_pool(x, _pool_of(layer, pool)).float().cpu())
            if k >= max(depth.values()):
                break
    return {layer: torch.cat(chunks).numpy() for layer, chunks in out.items()}


class FeatureCache:
    """Cached layer activations of a data set, keyed by what determines them."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @staticmethod
    def key(backbone: str, weights: str, layer: str, pool: int, fingerprint: str, part: str,
            input_size: int = 0) -> str:
        # input_size enters the hash only when set, so entries cached before it existed stay valid.
        text = json.dumps([backbone, weights, layer, pool, fingerprint, part] + ([input_size] if input_size else []))
        size = f"-{input_size}px" if input_size else ""
        return f"{backbone}-{weights}-{layer}-p{pool}{size}-{part}-" + hashlib.sha1(text.encode()).hexdigest()[:10]

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.folder / f"{key}.npy", self.folder / f"{key}.json"

    def load(self, key: str) -> np.ndarray | None:
        """The cached array, or None when missing, partial or corrupted."""
        array_path, meta_path = self._paths(key)
        if not (array_path.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            array = np.load(array_path)
        except (OSError, ValueError, json.JSONDecodeError):
            log.warning("feature cache entry %s unreadable; recomputing", key)
            return None
        if list(array.shape) != meta["shape"] or hashlib.sha1(array.tobytes()).hexdigest() != meta["sha1"]:
            log.warning("feature cache entry %s corrupted; recomputing", key)
            return None
        return array

    def store(self, key: str, array: np.ndarray) -> None:
        """Write atomically: the array first, then its metadata (which makes the entry valid)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        array_path, meta_path = self._paths(key)
        tmp = array_path.with_name(f".{key}.{os.getpid()}.npy")
        np.save(tmp, array)
        os.replace(tmp, array_path)
        meta = {"shape": list(array.shape), "sha1": hashlib.sha1(array.tobytes()).hexdigest()}
        tmp_meta = meta_path.with_name(f".{key}.{os.getpid()}.json")
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, meta_path)


def layer_features(data, backbone: str, weights: str, layers: list[str], pool: int, cache: FeatureCache | None,
                   device: torch.device | None = None, input_size: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Features of ``layers`` for the train / val / test images, from the cache or computed (then cached).

    ``input_size``: side the images are resized to before the trunk; 0: as stored.

    Returns
    -------
    dict layer -> dict part -> array (N_part, F)
    """
    device = device or default_device()
    result: dict[str, dict[str, np.ndarray]] = {layer: {} for layer in layers}
    missing = set()
    for layer in layers:
        for part in PARTS:
            array = None
            if cache is not None:
                array = cache.load(FeatureCache.key(backbone, weights, layer, _pool_of(layer, pool), data.fingerprint,
                                                    part, input_size))
            if array is None:
                missing.add(layer)
            else:
                result[layer][part] = array
    if missing:
        todo = [layer for layer in layers if layer in missing]
        log.info("computing %s %s features of %s on %s", backbone, weights, ", ".join(todo), device)
        for part in PARTS:
            computed = compute_layers(backbone, weights, todo, pool, getattr(data, f"stimulus_{part}"), device,
                                      input_size=input_size)
            for layer, array in computed.items():
                result[layer][part] = array
                if cache is not None:
                    cache.store(FeatureCache.key(backbone, weights, layer, _pool_of(layer, pool), data.fingerprint,
                                                 part, input_size), array)
    return result


def pixel_features(data) -> dict[str, np.ndarray]:
    """The images themselves, flattened: part -> array (N_part, 3 * H * W)."""
    return {part: getattr(data, f"stimulus_{part}").reshape(len(getattr(data, f"stimulus_{part}")), -1)
            for part in PARTS}
