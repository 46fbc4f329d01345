"""An estimate of the full-profile ladder's GPU time, from FLOP counts: no GPU has run it.

    python benchmarks/ladder_cost.py                          # H100 bf16, 3x the FLOP floor
    python benchmarks/ladder_cost.py --peak-tflops 990 --times-floor 2

For each network study of the default ladder it draws configs from the study's own
space (its first points, then Optuna's random sampler), counts one training step's
FLOPs per image with torch's flop counter at the full profile's 224 px, and multiplies:

- a search: 64 trials under ASHA (grace 1/8 of 60 epochs = 8, reduction 3, rungs 8 / 24
  / 60): 8 + 16/3 + 36/9 = 17.3 epochs per trial on average; each epoch trains the fit
  split (90 % of 2,592 images) once and evaluates the 10 % inner split;
- its re-check: the 3 best configs over at most 3 new seeds, to 60 epochs;
- the final trainings: 3 seeds of each network row to 60 epochs (the best study's two
  further re-checked configs included).

Seconds = FLOPs / (peak x 1e12) x ``--times-floor`` (the training core's goal on a GPU is
to stay within 3x of the floor) plus ``--trial-overhead-s`` per trial. Readout rows
(pixels, layer activations) take minutes and are left out. With several GPUs the trials
of a study spread over them; the ladder runs its studies one after another, so a study
with fewer trials than GPUs leaves some idle (not modelled: an estimate from below).
Early stopping (patience) would shorten every figure.
"""

from __future__ import annotations

import argparse
import logging

import optuna
import torch

from search_spaces import SEARCH_SPACES
from search_spaces.context import BoundSpace, SpaceContext
from trainables.fitting.families import complete
from trainables.models.heads import build_model

STUDIES = ("shallow_cnn", "vgg_depth", "decoder_head")
RESOLUTION, TRAIN_IMAGES, INNER_SHARE, EPOCHS, TRIALS = 224, 2592, 0.1, 60, 64
ASHA_EPOCHS = 8 + (24 - 8) / 3 + (60 - 24) / 9  # a trial's mean epochs under ASHA (rungs 8, 24, 60; reduction 3)
RECHECK_RUNS, SEEDS = 3 * 3, 3
FINAL_ROWS = {"shallow_cnn": 1, "vgg_depth": 3, "decoder_head": 1}  # vgg_depth: its row + the ensemble's 2 configs


def train_flops(config: dict, n_sites: int = 168) -> float:
    """FLOPs of one forward + backward pass of one image (torch's flop counter, batch of 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model({**config, "weights": "random"}, n_sites)  # the same FLOPs, without a checkpoint to load
    x = torch.randn(2, 3, RESOLUTION, RESOLUTION)
    with FlopCounterMode(display=False) as counter:
        model.forward_standardized(x).sum().backward()
    return counter.get_total_flops() / 2


def sampled_configs(space: str, n: int) -> list[dict]:
    """``n`` configs of ``space`` as a full-profile search would draw them: its first points, then random ones."""
    module = __import__(SEARCH_SPACES[space].__module__, fromlist=["POINTS_TO_EVALUATE"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for point in getattr(module, "POINTS_TO_EVALUATE", []):
        study.enqueue_trial(point)
    bound = BoundSpace(space, SpaceContext())
    return [complete(bound(study.ask())) for _ in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--peak-tflops", type=float, default=790.0, help="the GPU's bf16 matrix rate (H100 SXM: 790)")
    p.add_argument("--times-floor", type=float, default=3.0, help="seconds as a multiple of the FLOP floor")
    p.add_argument("--trial-overhead-s", type=float, default=10.0, help="start and set-up per trial or run")
    p.add_argument("--configs", type=int, default=6, help="configs drawn per study for its mean FLOPs")
    args = p.parse_args()
    optuna.logging.set_verbosity(logging.WARNING)
    rate = args.peak_tflops * 1e12 / args.times_floor
    per_epoch_images = TRAIN_IMAGES * (1 - INNER_SHARE) + TRAIN_IMAGES * INNER_SHARE / 3  # evaluation: 1/3 a step
    print(f"estimate, not a measurement: {args.peak_tflops:g} TFLOP/s bf16 at {args.times_floor:g}x the floor, "
          f"{args.trial_overhead_s:g} s per run; {RESOLUTION} px, {TRAIN_IMAGES} training images")
    print(f"{'study':14s} {'GFLOP/img':>10s} {'s/epoch':>8s} {'search h':>9s} {'re-check h':>10s} {'finals h':>9s}")
    total = runs = 0.0
    for space in STUDIES:
        flops = [train_flops(c) for c in sampled_configs(space, args.configs)]
        mean = sum(flops) / len(flops)
        epoch_s = mean * per_epoch_images / rate
        search = TRIALS * (ASHA_EPOCHS * epoch_s + args.trial_overhead_s)
        recheck = RECHECK_RUNS * (EPOCHS * epoch_s + args.trial_overhead_s)
        finals = FINAL_ROWS[space] * SEEDS * (EPOCHS * epoch_s + args.trial_overhead_s)
        total += search + recheck + finals
        runs += TRIALS + RECHECK_RUNS + FINAL_ROWS[space] * SEEDS
        print(f"{space:14s} {mean / 1e9:10.1f} {epoch_s:8.2f} {search / 3600:9.2f} {recheck / 3600:10.2f} "
              f"{finals / 3600:9.2f}")
    print(f"the full-profile ladder's network rows: {total / 3600:.1f} GPU-hours over {int(runs)} runs; "
          f"about {total / 3600:.1f} h on 1 GPU, {total / 4 / 3600:.1f} h on 4 (trials spread evenly)")


if __name__ == "__main__":
    main()
