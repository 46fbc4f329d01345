#!/usr/bin/env bash
# The GPU checks in one run: the training-core benchmark at report scale, the packing benchmarks, a full-profile
# search and the calibration; a short table last. Like every other command it assumes the project is installed
# (pip install -e .) on the GPU machine. Results go to $OUT (default /tmp/out).
set -euo pipefail
mkdir -p "${OUT:-/tmp/out}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "${OUT:-/tmp/out}/gpu.txt"
python benchmarks/train_loop.py --scale report --epochs 3 | tee "${OUT:-/tmp/out}/train_loop.txt"
python benchmarks/packing.py --space shallow_cnn --levels 1 2 4 --epochs 5 --storage /tmp/pack_shallow \
    -- --profile smoke --resolution 224 --images-per-object 50 | tee "${OUT:-/tmp/out}/packing_shallow.txt"
python benchmarks/packing.py --space resnet_depth --levels 1 2 4 --trials-per-level 4 --epochs 3 \
    --storage /tmp/pack_resnet -- --profile smoke --resolution 224 --images-per-object 50 \
    | tee "${OUT:-/tmp/out}/packing_resnet.txt"  # smoke: random weights where ImageNet ones are not cached
# Report scale, full profile: 8 resnet_depth trials, 6 epochs, four per GPU. The device cannot download
# ImageNet weights and --profile full refuses to start without them, so the torch cache gets torchvision's
# randomly initialised state dicts under the real file names (speed does not depend on the weights' values).
export TORCH_HOME=/tmp/torch_home
python - <<'PY'
import torch, torchvision
from pathlib import Path
from trainables.models.weights import IMAGENET_WEIGHTS
folder = Path("/tmp/torch_home/hub/checkpoints"); folder.mkdir(parents=True, exist_ok=True)
for name in ("resnet18", "resnet34", "resnet50", "resnet101"):
    torch.save(getattr(torchvision.models, name)(weights=None).state_dict(), folder / IMAGENET_WEIGHTS[name].filename())
PY
python -m trainables.search --space resnet_depth --profile full --num-samples 8 --max-epochs 6 \
    --recheck-top 0 --gpus-per-trial 0.25 --storage /tmp/full_resnet > "${OUT:-/tmp/out}/full_resnet.log" 2>&1 || true
python benchmarks/report_scale.py --summarize /tmp/full_resnet/resnet_depth | tee "${OUT:-/tmp/out}/full_resnet.txt"
python benchmarks/report_scale.py --setup-only | tee "${OUT:-/tmp/out}/setup.txt"
# Synthetic v4 calibration with both trained rows on the 224-px images (a CPU trains the shallow CNN at 112 px).
python benchmarks/calibration.py --resolution 224 --epochs 30 --storage /tmp/calib --no-write \
    | tee "${OUT:-/tmp/out}/calibration.txt"
echo "=== summary ==="
tail -4 "${OUT:-/tmp/out}/train_loop.txt"
tail -4 "${OUT:-/tmp/out}/packing_shallow.txt"
tail -4 "${OUT:-/tmp/out}/packing_resnet.txt"
cat "${OUT:-/tmp/out}/full_resnet.txt"
grep "^| " "${OUT:-/tmp/out}/calibration.txt" | head -12
