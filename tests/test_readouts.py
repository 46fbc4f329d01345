import json

import numpy as np
import pytest
from searchutil import refused

from trainables import train
from trainables.fitting.families import complete
from trainables.fitting.features import FeatureCache, layer_features
from trainables.fitting.readout import fit_readout_inner
from trainables.fitting.ridge import DEFAULT_ALPHAS
from trainables.models.backbones import layer_names


def test_layer_names_per_backbone():
    assert layer_names("resnet50") == ["conv1", "layer1", "layer2", "layer3", "layer4", "avgpool"]
    names = layer_names("efficientnet_lite0")
    assert names[0] == "block1" and names[-1] == "avgpool" and len(names) == 19


def test_feature_cache_reuses_and_detects_corruption(tiny_data, tmp_path):
    cache = FeatureCache(tmp_path)
    first = layer_features(tiny_data, "resnet18", "random", ["layer1", "avgpool"], 2, cache)
    assert first["layer1"]["train"].shape == (len(tiny_data.spikes_train), 64 * 4)
    assert first["avgpool"]["val"].shape == (len(tiny_data.spikes_val), 512)
    key = FeatureCache.key("resnet18", "random", "layer1", 2, tiny_data.fingerprint, "train")
    np.testing.assert_array_equal(cache.load(key), first["layer1"]["train"])
    # Corrupt one entry: it is detected and recomputed, not used.
    path = tmp_path / f"{key}.npy"
    array = np.load(path)
    array[0, 0] += 1.0
    np.save(path, array)
    assert cache.load(key) is None
    again = layer_features(tiny_data, "resnet18", "random", ["layer1"], 2, cache)
    np.testing.assert_allclose(again["layer1"]["train"], first["layer1"]["train"], rtol=1e-5)
    assert cache.load(key) is not None
    # A partial entry (array without its metadata) is not used either.
    (tmp_path / f"{key}.json").unlink()
    assert cache.load(key) is None


def test_pixel_ridge_readout_scores_the_inner_split(tiny_data):
    scores = fit_readout_inner(complete({"model": "ridge", "layer": "pixels"}), tiny_data)
    # Cross-validation settles inside the grid: neither (almost) least squares nor all shrinkage.
    assert scores["n_features"] == 3 * 32 * 32 and DEFAULT_ALPHAS[0] < scores["alpha"] < DEFAULT_ALPHAS[-1]
    assert -1 < scores["inner_ev"] < 0.5
    linear = fit_readout_inner(complete({"model": "ridge", "layer": "pixels", "alpha": 0}), tiny_data)
    assert linear["inner_ev"] < scores["inner_ev"]


@pytest.mark.slow
def test_train_accepts_a_ridge_config(tmp_path, capsys):
    config = tmp_path / "ridge.json"
    config.write_text(json.dumps({"model": "ridge", "backbone": "efficientnet_lite0", "weights": "imagenet",
                                  "layer": "block8", "feature_pool": 2}))
    out = tmp_path / "out"
    assert train.main(["--config", str(config), "--out", str(out), "--storage", str(tmp_path), "--resolution", "32",
                       "--images-per-object", "6", "--profile", "smoke"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.load(out / "predictions_val.npy").shape[1] == 168 and metrics["alpha"] > 0
    assert any((tmp_path / "features").glob("efficientnet_lite0-imagenet-block8-p2-*.npy"))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": "ridge", "backbone": "resnet50", "layer": "layer9"}))
    assert "'layer9' is not a layer of resnet50" in refused(train.main, ["--config", str(bad)], capsys)
