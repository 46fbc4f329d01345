"""The network family (``model: network``): a backbone and decoder head trained end to end by :func:`fit`.

A search trial reports every epoch; the session saves a resumable checkpoint when
its policy says so and the best weights when the fit ends. Final training fits on
all training images (early stopping on the inner split) and predicts the official
validation and test images.

Host memory of a trial (a coarse upper bound, checked against
``benchmarks/report_scale.py`` at 224 px): the process (1 GiB), the model's
weights four times over (parameters, Adam's two moments and the best weights, all
on the host when a checkpoint is written), and, when it trains on the CPU, the
activations autograd keeps for a batch (about 64 float32 values per input value
for the report's CNNs at 224 px). The images are not counted: a search shares one
copy between its trials.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import torch

from trainables.core.config import ConfigError
from trainables.data.schema import ITData
from trainables.fitting.family import PROCESS_BYTES, DataShape, Family, FinalContext, FinalFit, TrialSession
from trainables.fitting.loop import TRAINING_FIELDS, Trainer, fit, predict
from trainables.models.backbones import BACKBONE_FIELDS, backbone_config, block_count, build_backbone, check_backbone
from trainables.models.heads import HEAD_FIELDS, build_head
from trainables.models.weights import IMAGENET_WEIGHTS

log = logging.getLogger(__name__)
ACTIVATION_VALUES_PER_INPUT_VALUE = 64


def search_fit(config: dict, data: ITData, session: TrialSession) -> None:
    """Train on the fit images, report every epoch's inner-split scores; resume from the session's state."""

    def report(record: dict, trainer: Trainer) -> None:
        metrics = {
            "epoch": record["epoch"],
            "train_loss": record["train_loss"],
            "inner_ev": record["inner_ev"],
            "inner_r": record["inner_r"],
            "best_inner_ev": trainer.best_ev,
            "best_epoch": trainer.best_epoch,
            "lr": record["lr"],
            "epoch_seconds": record["seconds"],
            "images_per_s": trainer.n_fit / record["seconds"],
            **({"peak_gpu_gib": torch.cuda.max_memory_allocated() / 1024**3} if torch.cuda.is_available() else {}),
        }
        session.report(metrics, trainer.should_stop(), resumable=trainer.state_dict,
                       weights=lambda: trainer.best_state, inner_sums=trainer.inner_sums)

    fit(config, data, on_epoch=report, resume_state=session.resume_state())


def final_fit(config: dict, data: ITData, ctx: FinalContext) -> FinalFit:
    """Fit with early stopping on the inner split; predict the validation and test images with the best weights."""
    history = fit(config, data, on_epoch=_log_epoch)
    info = {"best_epoch": history.best_epoch, "epochs_run": len(history.epochs),
            "inner_ev": history.best["inner_ev"], "history": history.epochs}
    return FinalFit(predict(history.model, data.stimulus_val), predict(history.model, data.stimulus_test), info,
                    history.model, curve=history.epochs, best_epoch=history.best_epoch)


def _log_epoch(record: dict, trainer: Trainer) -> None:
    log.info("epoch %3d/%d  loss %.4f  inner EV %.4f  r %.4f  (%.1fs)", record["epoch"],
                     trainer.config["epochs"], record["train_loss"], record["inner_ev"], record["inner_r"],
                     record["seconds"])


@lru_cache(maxsize=None)
def _trunk(backbone: str, vgg_blocks: int, width_mult: float, trunk_layer: str, input_size: int,
           image_size: int | None) -> tuple[int, int, int | None]:
    """(parameters, output channels, side of its feature map at ``image_size`` px or None) of a trunk.

    Built on the meta device: no memory, no weights read, shapes only.
    """
    config = backbone_config(backbone=backbone, vgg_blocks=vgg_blocks, width_mult=width_mult, trunk_layer=trunk_layer,
                             input_size=input_size)
    with torch.device("meta"):
        trunk = build_backbone(config).eval()
        side = None
        if image_size:
            try:
                side = trunk(torch.empty(1, 3, image_size, image_size)).shape[-1]
            except RuntimeError:  # a map shrank to nothing on the way
                side = 0
    return sum(p.numel() for p in trunk.parameters()), trunk.out_channels, side


def _trunk_of(config: dict, image_size: int | None = None) -> tuple[int, int, int | None]:
    return _trunk(config["backbone"], config["vgg_blocks"], float(config["width_mult"]), config["trunk_layer"],
                  config["input_size"], image_size)


def _side_of(config: dict, image_size: int | None) -> int | None:
    """Side of the trunk's feature map at ``image_size`` px (0: it shrank to nothing; None without an image size,
    the trunk only built).

    A width multiplier scales channels, never the map: the side is asked at width 1, so that a space that samples
    widths builds one network per architecture for its checks, not one per sample.
    """
    return _trunk(config["backbone"], config["vgg_blocks"], 1.0, config["trunk_layer"], config["input_size"],
                  image_size)[2]


def parameter_count(config: dict, n_sites: int) -> int:
    """Parameters of the config's model: its trunk's (built once per architecture) plus its decoder head's."""
    count, channels, _ = _trunk_of(config)
    with torch.device("meta"):  # a 7000-7000 head counted without allocating it
        head = build_head(config, channels, n_sites)
    return count + sum(p.numel() for p in head.parameters())


def memory_bytes(config: dict, shape: DataShape, on_gpu: bool) -> int:
    """Host memory one trial adds beyond the shared images (see the module docstring), bytes."""
    side = config["input_size"] or shape.image_shape[-1]
    values_per_image = shape.image_shape[0] * side * side
    weights = 4 * 4 * parameter_count(config, shape.n_sites)
    activations = 0 if on_gpu else 4 * ACTIVATION_VALUES_PER_INPUT_VALUE * config["batch_size"] * values_per_image
    return PROCESS_BYTES + weights + activations


def check(config: dict, image_size: int | None) -> None:
    """Refuse a network that cannot be built or trained (at ``image_size`` px when known)."""
    try:
        check_backbone(config["backbone"])
        block_count(config["backbone"], config["trunk_layer"])
    except ValueError as err:
        raise ConfigError(f"config key '{_key_of(err)}': {err}") from None
    if config["weights"] == "imagenet" and config["backbone"] not in IMAGENET_WEIGHTS:
        raise ConfigError(f"config key 'weights': backbone '{config['backbone']}' has no ImageNet weights; "
                          "use 'random'")
    side = _side_of(config, image_size)
    seen = config["input_size"] or image_size
    if side == 0:
        raise ConfigError(f"config key 'backbone': {config['backbone']} cut at {config['trunk_layer']} cannot read "
                          f"{seen}-px images (its feature map shrinks to nothing); use larger images or input_size")
    if side is not None and config["head_pool"] > side:
        raise ConfigError(f"config key 'head_pool': {config['head_pool']} exceeds the {side} x {side} feature map of "
                          f"{config['backbone']} at {seen} px")


def _key_of(err: ValueError) -> str:
    return "trunk_layer" if "has no layer" in str(err) else "backbone"


def uses_backbone(config: dict) -> bool:
    """A network always runs its backbone."""
    return True


FAMILY = Family(
    name="network",
    search_fit=search_fit,
    final_fit=final_fit,
    memory_bytes=memory_bytes,
    check=check,
    uses_backbone=uses_backbone,
    fields={**BACKBONE_FIELDS, **HEAD_FIELDS, **TRAINING_FIELDS},
    epoch_metrics=("train_loss", "lr", "images_per_s", "peak_gpu_gib"),
)
