"""The training core: ``fit(config, data, on_epoch) -> History``. Knows nothing of Ray.

On CUDA the training images live on the GPU in bf16 and channels_last, batches
are drawn by a device-side permutation, the forward pass runs under bf16
autocast, Adam/AdamW are fused, and the host synchronises once per epoch (to read
the epoch's loss and the inner-validation predictions together). On the CPU the
same code runs in fp32, reading the caller's image array where it lies (in a Ray
trial: the object store's shared copy), so a trial adds no copy of the images.

Selection uses the inner validation split carved from the training images
(:func:`trainables.data.splits.inner_split`); the official validation set is not seen here.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from trainables.core.config import Field
from trainables.core.devices import default_device
from trainables.core.metrics import ObjectSums, explained_variance, object_sums, pearson_per_site
from trainables.data.schema import ITData
from trainables.data.splits import inner_split
from trainables.models.heads import EncodingModel, build_model

log = logging.getLogger(__name__)

EVAL_BATCH = 256
_NUM = (int, float)
# The config keys of the training loop (the network family declares them; ``epochs`` and ``seed`` are every
# config's).
TRAINING_FIELDS: dict[str, Field] = {
    "optimizer": Field((str,), "adamw", ("adam", "adamw", "sgd"), help="Adam and AdamW are fused on a GPU"),
    "lr": Field(_NUM, 1e-3, gt=0, help="a rate that diverges fails its trial"),
    "weight_decay": Field(_NUM, 0.0, ge=0, le=10, help="L2 penalty (decoupled for AdamW)"),
    "momentum": Field(_NUM, 0.9, ge=0, lt=1, help="sgd only"),
    "scheduler": Field((str,), "none", ("none", "step", "cosine", "plateau"), help="learning-rate schedule"),
    "step_size": Field((int,), 15, ge=1, help="step: epochs between decays"),
    "gamma": Field(_NUM, 0.5, gt=0, lt=1, help="step / plateau: decay factor of the learning rate"),
    "batch_size": Field((int,), 64, ge=2, le=65_536, help="at least 2 (batch norm)"),
    "patience": Field((int, type(None)), 10, ge=1, help="epochs without a better inner EV before stopping; null: off"),
}


class DivergedError(RuntimeError):
    """Training produced a non-finite loss."""


@dataclass
class History:
    """What one fit produced.

    Attributes
    ----------
    epochs : list of dict
        Per epoch: ``epoch`` (1-based), ``train_loss``, ``inner_ev``, ``inner_r``, ``lr``, ``seconds``.
    best_epoch : int
        Epoch whose weights were restored (best inner-validation EV).
    model : EncodingModel
        The fitted model, best weights, in eval mode.
    """

    epochs: list = field(default_factory=list)
    best_epoch: int = 0
    model: EncodingModel | None = None

    @property
    def best(self) -> dict:
        return self.epochs[self.best_epoch - 1]


def make_optimizer(config: dict, params, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    name = config["optimizer"]
    if name == "sgd":
        return torch.optim.SGD(params, lr=config["lr"], momentum=config["momentum"], weight_decay=config["weight_decay"])
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[name]
    # One fused kernel per step instead of several per parameter tensor.
    return cls(params, lr=config["lr"], weight_decay=config["weight_decay"], fused=device.type == "cuda")


def make_lr_scheduler(config: dict, optimizer: torch.optim.Optimizer):
    name = config["scheduler"]
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config["step_size"], gamma=config["gamma"])
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config["epochs"])
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=config["gamma"], patience=3)
    return None


class DeviceImages:
    """Images (N, 3, H, W) where a model reads them, indexed batch by batch.

    On the CPU: the caller's float32 array itself, not copied (read only). With
    ``channels_last`` (the default on CUDA): one device copy in bf16 stored as
    (N, H, W, 3), so that a batch gathered by row indices is already channels_last;
    gathering rows of an (N, 3, H, W) channels_last tensor returns a contiguous
    NCHW batch, a layout conversion per batch. The copy is made in chunks, so the
    host never holds a second full set of images.

    Parameters
    ----------
    images : array, shape (N, 3, H, W), float32
    device : torch.device
    channels_last : bool, optional
        Default: on CUDA only.
    """

    def __init__(self, images: np.ndarray, device: torch.device, channels_last: bool | None = None, chunk: int = 256):
        self.device = device
        self.channels_last = device.type == "cuda" if channels_last is None else channels_last
        with warnings.catch_warnings():  # the object store's arrays are read-only; nothing here writes to them
            warnings.simplefilter("ignore", UserWarning)
            host = torch.from_numpy(np.asarray(images, dtype=np.float32))
        if not self.channels_last and device.type == "cpu":
            self.store = host
            return
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        n, c, h, w = host.shape
        shape = (n, h, w, c) if self.channels_last else (n, c, h, w)
        self.store = torch.empty(shape, dtype=dtype, device=device)
        for i in range(0, n, chunk):
            part = host[i : i + chunk].to(device=device, non_blocking=False).to(dtype)
            self.store[i : i + chunk] = part.permute(0, 2, 3, 1) if self.channels_last else part

    def __len__(self) -> int:
        return self.store.shape[0]

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Images at the row indices ``idx`` (B,) -> (B, 3, H, W), channels_last strides when stored so."""
        rows = self.store.index_select(0, idx.to(self.store.device))
        return rows.permute(0, 3, 1, 2) if self.channels_last else rows


@torch.no_grad()
def predict_standardized(model: EncodingModel, images: DeviceImages, idx: torch.Tensor | None = None,
                         batch: int = EVAL_BATCH) -> torch.Tensor:
    """Per-site z-scores for the images at ``idx`` (all when None) -> (N, n_sites), fp32, on the device."""
    was_training = model.training
    model.eval()
    if idx is None:
        idx = torch.arange(len(images), device=images.device)
    with _autocast(images.device):
        out = torch.cat([model.forward_standardized(images.batch(idx[i : i + batch])).float()
                         for i in range(0, len(idx), batch)])
    model.train(was_training)
    return out


@torch.no_grad()
def predict(model: EncodingModel, images: np.ndarray, device: torch.device | None = None) -> np.ndarray:
    """Firing rates predicted for images (N, 3, H, W) -> array (N, n_sites)."""
    device = device or next(model.parameters()).device
    z = predict_standardized(model, DeviceImages(images, device))
    return (z * model.rate_std + model.rate_mean).cpu().numpy()


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


class Trainer:
    """State of one training run; :func:`fit` drives it. ``state_dict`` makes it resumable.

    Parameters
    ----------
    config : dict
        Validated config (:func:`trainables.core.config.validate_config`).
    data : ITData
    device : torch.device, optional
    """

    def __init__(self, config: dict, data: ITData, device: torch.device | None = None):
        self.config = config
        self.device = device or default_device()
        torch.manual_seed(config["seed"])
        fit_idx, inner_idx = inner_split(data.object_train, config["inner_val_fraction"], config["split_seed"])
        y = data.spikes_train
        mean, std = y[fit_idx].mean(axis=0), y[fit_idx].std(axis=0) + 1e-6
        self.model = build_model(config, data.n_sites)
        self.model.rate_mean.copy_(torch.from_numpy(mean))
        self.model.rate_std.copy_(torch.from_numpy(std))
        self.model.to(self.device)
        if self.device.type == "cuda":
            self.model.to(memory_format=torch.channels_last)
        # All training images, shared (CPU) or one device copy (CUDA); batches are gathered by index.
        self.images = DeviceImages(data.stimulus_train, self.device)
        self.fit_idx = torch.as_tensor(fit_idx, device=self.device)
        self.inner_idx = torch.as_tensor(inner_idx, device=self.device)
        self.z_fit = torch.from_numpy((y[fit_idx] - mean) / std).to(self.device)
        self.z_inner = ((y[inner_idx] - mean) / std).astype(np.float64)
        self.optimizer = make_optimizer(config, self.model.parameters(), self.device)
        self.scheduler = make_lr_scheduler(config, self.optimizer)
        self.generator = torch.Generator(device=self.device).manual_seed(config["seed"])
        self.epoch = 0
        self.best_ev = -math.inf
        self.best_epoch = 0
        self.best_state = None
        self.best_inner: np.ndarray | None = None  # inner-split predictions (z-scores) at the best epoch
        self.inner_objects = data.object_train[inner_idx]
        self.records: list[dict] = []

    @property
    def n_fit(self) -> int:
        return len(self.fit_idx)

    def batch_stops(self) -> list[int]:
        """Where an epoch's batches end, as positions among the shuffled fit images."""
        n, bs = self.n_fit, self.config["batch_size"]
        stops = list(range(bs, n, bs)) + [n]
        # A final batch of one image would break batch norm; fold it into the previous one.
        if len(stops) > 1 and stops[-1] - stops[-2] < 2:
            stops.pop(-2)
        return stops

    def train_epoch(self) -> dict:
        """One pass over the fit images and one inner-validation evaluation; one host sync."""
        start = time.perf_counter()
        model = self.model
        model.train()
        perm = torch.randperm(self.n_fit, device=self.device, generator=self.generator)
        loss_sum = torch.zeros((), device=self.device)
        stops = self.batch_stops()
        n = stops[-1]
        begin = 0
        for stop in stops:
            idx = perm[begin:stop]  # positions among the fit images
            with _autocast(self.device):
                pred = model.forward_standardized(self.images.batch(self.fit_idx.index_select(0, idx)))
            loss = nn.functional.mse_loss(pred.float(), self.z_fit.index_select(0, idx))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            loss_sum += loss.detach() * (stop - begin)
            begin = stop
        z_pred = predict_standardized(model, self.images, self.inner_idx)
        # The epoch's only host synchronisation: loss and inner predictions together.
        host = torch.cat([(loss_sum / n).view(1), z_pred.flatten()]).cpu().numpy().astype(np.float64)
        train_loss, z_pred = host[0], host[1:].reshape(self.z_inner.shape)
        self.epoch += 1
        if not np.isfinite(train_loss) or not np.isfinite(z_pred).all():
            raise DivergedError(f"training diverged at epoch {self.epoch}: train loss {train_loss}")
        record = {
            "epoch": self.epoch,
            "train_loss": float(train_loss),
            "inner_ev": explained_variance(self.z_inner, z_pred),
            "inner_r": float(pearson_per_site(self.z_inner, z_pred).mean()),
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - start,
        }
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(record["inner_ev"])
        elif self.scheduler is not None:
            self.scheduler.step()
        if record["inner_ev"] > self.best_ev:
            self.best_ev, self.best_epoch = record["inner_ev"], self.epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.best_inner = z_pred.astype(np.float32)
        self.records.append(record)
        return record

    def inner_sums(self) -> ObjectSums:
        """The best epoch's inner-split residuals summed per object (z-score units: EV is the same in rates)."""
        return object_sums(self.z_inner, self.best_inner, self.inner_objects)

    def should_stop(self) -> bool:
        patience = self.config["patience"]
        return self.epoch >= self.config["epochs"] or (
            patience is not None and self.epoch - self.best_epoch >= patience
        )

    def state_dict(self) -> dict:
        """Everything needed to continue this run in a new process, identically (random states included)."""
        return {
            # The global generators draw dropout masks (and any other randomness in the model).
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "best_ev": self.best_ev,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state,
            "best_inner": self.best_inner,
            "records": copy.deepcopy(self.records),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"].cpu() if self.device.type == "cpu" else state["generator"])
        torch.set_rng_state(state["rng_cpu"].cpu())
        if self.device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"].cpu(), self.device)
        self.epoch, self.best_ev, self.best_epoch = state["epoch"], state["best_ev"], state["best_epoch"]
        self.best_state = state["best_state"]
        self.best_inner = state.get("best_inner")
        self.records = list(state["records"])

    def finish(self) -> History:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()
        return History(epochs=self.records, best_epoch=self.best_epoch, model=self.model)


def fit(
    config: dict,
    data: ITData,
    on_epoch: Callable[[dict, Trainer], None] | None = None,
    device: torch.device | None = None,
    resume_state: dict | None = None,
) -> History:
    """Train one configuration with early stopping on the inner-validation EV.

    Parameters
    ----------
    config : dict
        Validated config.
    data : ITData
        Only the training images and responses are used.
    on_epoch : callable, optional
        ``on_epoch(record, trainer)`` after each epoch; ``record`` holds ``epoch``,
        ``train_loss``, ``inner_ev``, ``inner_r``, ``lr``, ``seconds``; ``trainer.state_dict()``
        gives a checkpoint. It may raise to stop training.
    device : torch.device, optional
        Default: CUDA when available.
    resume_state : dict, optional
        A ``Trainer.state_dict()`` to continue from.

    Returns
    -------
    History
        Per-epoch records and the model with its best weights restored.

    Raises
    ------
    DivergedError
        Non-finite training loss.
    """
    trainer = Trainer(config, data, device)
    if resume_state is not None:
        trainer.load_state_dict(resume_state)
    while not trainer.should_stop():
        record = trainer.train_epoch()
        if on_epoch is not None:
            on_epoch(record, trainer)
    return trainer.finish()
