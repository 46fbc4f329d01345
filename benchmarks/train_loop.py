"""Seconds per epoch: a report-style training loop vs. the training core's ``fit`` loop, side by side.

Report-style: CPU ``TensorDataset`` + ``DataLoader``, fp32, a host sync per step
(``loss.item()``), and a full re-evaluation of the training set every epoch.
Core: :class:`trainables.fit.Trainer` (device-resident data, bf16 autocast and
channels_last on CUDA, fused Adam, one host sync per epoch).

    python benchmarks/train_loop.py                  # small, CPU-sized
    python benchmarks/train_loop.py --scale report   # 2592 images, 224 px, ResNet-34 + 7000-7000, batch 128

Both loops train the same model (same initial weights) on the same data.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainables.core.devices import default_device
from trainables.data.schema import from_arrays
from trainables.data.synthetic import SyntheticSpec, generate
from trainables.fitting.families import complete
from trainables.fitting.loop import Trainer

SCALES = {
    # name: (resolution, images per object, backbone, head, batch)
    "small": (64, 20, "resnet18", [1024], 128),
    "report": (224, 50, "resnet34", [7000, 7000], 128),
}


def report_style_epoch(model, loader, eval_loader, optimizer, device) -> float:
    """One epoch as the report's code did it; returns seconds."""
    start = time.perf_counter()
    model.train()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        loss = nn.functional.mse_loss(model.forward_standardized(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()  # logged every step: one host sync per step
    model.eval()
    with torch.no_grad():  # full re-evaluation of the training set every epoch
        for x, y in eval_loader:
            nn.functional.mse_loss(model.forward_standardized(x.to(device)), y.to(device)).item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def train_flops_per_image(model, resolution: int, device) -> float:
    """FLOPs of one forward + backward pass per image (torch's flop counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(2, 3, resolution, resolution, device=device)
    with FlopCounterMode(display=False) as counter:
        model.forward_standardized(x).sum().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", choices=SCALES, default="small")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per loop (after one warm-up)")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="bf16 matrix rate for the FLOP floor")
    args = parser.parse_args()
    resolution, ipo, backbone, head, batch = SCALES[args.scale]
    device = default_device()
    data = from_arrays(generate(SyntheticSpec(resolution=resolution, images_per_object=ipo)), "benchmark")
    config = complete({"backbone": backbone, "head_hidden": head, "head_dropout": 0.5, "optimizer": "adam",
                              "lr": 1e-4, "batch_size": batch, "epochs": 100, "patience": None})
    trainer = Trainer(config, data, device)
    init = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    # Report-style loop on the same images (fit split) and the same initial weights.
    x = torch.from_numpy(data.stimulus_train[trainer.fit_idx.cpu().numpy()])
    z = trainer.z_fit.cpu()
    loader = DataLoader(TensorDataset(x, z), batch_size=batch, shuffle=True)
    eval_loader = DataLoader(TensorDataset(x, z), batch_size=batch)
    model = trainer.model
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    report_style_epoch(model, loader, eval_loader, optimizer, device)  # warm-up
    report = [report_style_epoch(model, loader, eval_loader, optimizer, device) for _ in range(args.epochs)]

    model.load_state_dict(init)
    trainer.train_epoch()  # warm-up
    core = [trainer.train_epoch()["seconds"] for _ in range(args.epochs)]

    r, c = float(np.median(report)), float(np.median(core))
    n = trainer.n_fit
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), "
          f"{args.scale}: {backbone} + {head} head, {n} training images at {resolution} px, batch {batch}")
    print(f"report-style loop : {r:8.3f} s/epoch")
    print(f"fit (core) loop   : {c:8.3f} s/epoch")
    print(f"speed-up          : {r / c:8.2f}x")
    if device.type == "cuda":
        flops = train_flops_per_image(model, resolution, device)
        floor = flops * n / (args.peak_tflops * 1e12)
        print(f"FLOP floor        : {floor:8.3f} s/epoch ({flops / 1e9:.1f} GFLOP/image at {args.peak_tflops:g} TFLOP/s);"
              f" core is {c / floor:.1f}x the floor")


if __name__ == "__main__":
    main()
