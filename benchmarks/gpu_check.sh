#!/usr/bin/env bash
# One prepared script for a lent GPU machine (DESIGN.md §7): install the shipped wheels, then
# the training-core benchmark at report scale and the packing benchmarks; a short table last.
# Build .devwhl/ first, here: bash ../shared/tools/device_ray.sh
set -euo pipefail
pip install -q --no-index --no-deps --target /tmp/site .devwhl/*.whl
tar xJf .devwhl/ray.tar.xz -C /tmp/site
export PYTHONPATH="/tmp/site:$PWD"
mkdir -p "${OUT:-/tmp/out}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "${OUT:-/tmp/out}/gpu.txt"
python benchmarks/train_loop.py --scale report --epochs 3 | tee "${OUT:-/tmp/out}/train_loop.txt"
python benchmarks/packing.py --space shallow_cnn --levels 1 2 4 --epochs 5 --storage /tmp/pack_shallow \
    -- --profile smoke --resolution 224 --images-per-object 50 | tee "${OUT:-/tmp/out}/packing_shallow.txt"
python benchmarks/packing.py --space resnet_depth --levels 1 2 4 --trials-per-level 4 --epochs 3 \
    --storage /tmp/pack_resnet -- --profile smoke --resolution 224 --images-per-object 50 \
    | tee "${OUT:-/tmp/out}/packing_resnet.txt"  # smoke: random weights where ImageNet ones are not cached
echo "=== summary ==="
tail -4 "${OUT:-/tmp/out}/train_loop.txt"
tail -4 "${OUT:-/tmp/out}/packing_shallow.txt"
tail -4 "${OUT:-/tmp/out}/packing_resnet.txt"
