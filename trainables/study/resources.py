"""How much host memory a trial needs, so that concurrency respects memory as well as CPUs and GPUs.

The images are not counted: a search puts them in Ray's object store once and
every trial reads that shared copy (a trial's own memory is what it adds). The
estimates are coarse upper bounds, checked against ``benchmarks/report_scale.py``
(224 px, the real image counts; see ``benchmarks/RESULTS.md``):

- every trial: a Python process with torch, Ray and the trial's libraries (1 GiB);
- a network: its weights four times over on the host (parameters, Adam's two
  moments and the best weights, all on the host when a checkpoint is written),
  plus, when it trains on the CPU, the activations autograd keeps for a batch
  (about 64 float32 values per input value for the report's CNNs at 224 px);
- a ridge readout: the Gram matrix of every image in float64 and a chunk of
  feature columns (``trainables.fitting.ridge.gram_matrix``), or its feature arrays when
  they are fewer than the images.
"""

from __future__ import annotations

from functools import lru_cache

import torch

GIB = 1024**3
PROCESS_BYTES = 1 * GIB
ACTIVATION_VALUES_PER_INPUT_VALUE = 64
GRAM_CHUNK = 4096


@lru_cache(maxsize=None)
def _backbone_size(backbone: str, vgg_blocks: int, width_mult: float, trunk_layer: str) -> tuple[int, int]:
    """(parameters, output channels) of a trunk, built on the meta device (no memory, no weights read)."""
    from trainables.models.backbones import build_backbone
    from trainables.core.config import validate_config

    with torch.device("meta"):
        trunk = build_backbone(validate_config({"backbone": backbone, "vgg_blocks": vgg_blocks, "width_mult": width_mult,
                                                "trunk_layer": trunk_layer}))
    return sum(p.numel() for p in trunk.parameters()), trunk.out_channels


def parameter_count(config: dict, n_sites: int) -> int:
    """Parameters of the config's model: the trunk's (built once per architecture) plus its decoder head's."""
    from trainables.models.heads import build_head

    count, channels = _backbone_size(config["backbone"], config["vgg_blocks"], float(config["width_mult"]),
                                     config["trunk_layer"])
    with torch.device("meta"):  # a 7000-7000 head counted without allocating it
        head = build_head(config, channels, n_sites)
    return count + sum(p.numel() for p in head.parameters())


class TrialResources:
    """What each trial asks Ray for: CPUs, GPUs, and its own memory estimate (or a fixed amount).

    Called by Ray Tune with a trial's config (``tune.with_resources``), so a ResNet-34
    with a 7000-7000 head reserves more than a ridge readout, and a node never runs
    more trials than its memory holds.
    """

    def __init__(self, cpus: float, gpus: float, shape: dict, fixed_bytes: int | None = None):
        self.cpus, self.gpus, self.shape, self.fixed_bytes = cpus, gpus, shape, fixed_bytes

    def memory(self, config: dict) -> int:
        from trainables.core.config import from_trial

        if self.fixed_bytes:
            return self.fixed_bytes
        return trial_memory_bytes(from_trial(config), self.shape["n_images"], tuple(self.shape["image_shape"]),
                                  self.shape["n_sites"], on_gpu=self.gpus > 0)

    def __call__(self, config: dict) -> dict:
        return {"cpu": self.cpus, "gpu": self.gpus, "memory": self.memory(config)}


def trial_memory_bytes(config: dict, n_images: int, image_shape: tuple, n_sites: int, on_gpu: bool) -> int:
    """Host memory one trial of ``config`` adds beyond the shared images, in bytes (a coarse upper bound).

    Parameters
    ----------
    config : dict
        Validated config.
    n_images : int
        Images of the data set (train + val + test).
    image_shape : tuple
        (3, H, W).
    n_sites : int
    on_gpu : bool
        Whether the trial trains on a GPU (activations then live in GPU memory).
    """
    if config["input_size"]:  # the trunk sees the resized images
        image_shape = (image_shape[0], config["input_size"], config["input_size"])
    values_per_image = int(torch.tensor(image_shape).prod())
    if config["model"] == "lookup":
        return PROCESS_BYTES
    if config["model"] == "ridge":
        gram = 8 * n_images**2
        chunk = 4 * 3 * GRAM_CHUNK * n_images  # a chunk, its float32 copy and its centred copy
        return PROCESS_BYTES + gram + chunk
    weights = 4 * 4 * parameter_count(config, n_sites)
    activations = 0 if on_gpu else 4 * ACTIVATION_VALUES_PER_INPUT_VALUE * config["batch_size"] * values_per_image
    return PROCESS_BYTES + weights + activations
