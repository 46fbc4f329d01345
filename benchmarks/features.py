"""A layer sweep's feature extraction with a cold cache vs. a warm one, side by side.

Six ResNet layers (conv1, layer1..4, avgpool) of one network on the synthetic data:
the first pass computes and caches the activations, the second reads them back.

    python benchmarks/features.py [--backbone resnet18] [--resolution 64]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from trainables.data.datasets import load_synthetic
from trainables.data.synthetic import SyntheticSpec
from trainables.fitting.features import FeatureCache, layer_features
from trainables.models.backbones import layer_names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--pool", type=int, default=2)
    args = parser.parse_args()
    data = load_synthetic(SyntheticSpec(resolution=args.resolution, images_per_object=50))
    layers = layer_names(args.backbone)
    with tempfile.TemporaryDirectory() as folder:
        cache = FeatureCache(Path(folder))
        start = time.perf_counter()
        layer_features(data, args.backbone, args.weights, layers, args.pool, cache)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        layer_features(data, args.backbone, args.weights, layers, args.pool, cache)
        warm = time.perf_counter() - start
    print(f"{args.backbone} ({args.weights}), layers {', '.join(layers)}, pool {args.pool}, "
          f"{data.describe()}")
    print(f"cold cache (compute + store): {cold:8.2f} s")
    print(f"warm cache (read + verify)  : {warm:8.2f} s")
    print(f"speed-up                    : {cold / warm:8.1f}x")


if __name__ == "__main__":
    main()
