from pathlib import Path

import pytest
import torch

from trainables.fitting.families import complete
from trainables.models.backbones import BACKBONES, build_backbone, check_backbone
from trainables.models.heads import HEADS, DecoderHead, FactorizedHead, build_model
from trainables.models.weights import WeightsNotFound


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_forward_backward_on_tiny_images(name):
    torch.manual_seed(0)
    model = build_model(complete({"backbone": name, "head_hidden": [16], "head_pool": 2}), n_sites=7)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    model.forward_standardized(x).pow(2).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("k", range(1, 9))
def test_vgg_depth_is_first_k_conv_blocks(k):
    trunk = build_backbone(complete({"backbone": "vgg11_bn", "vgg_blocks": k}))
    assert len(trunk.blocks) == k
    assert sum(isinstance(m, torch.nn.Conv2d) for m in trunk.modules()) == k
    assert trunk(torch.randn(1, 3, 32, 32)).shape[1] == trunk.out_channels


@pytest.mark.parametrize("backbone, layer, channels", [("efficientnet_lite0", "block12", 112), ("resnet18", "layer3", 256)])
def test_trunk_layer_cuts_the_network_where_the_readout_reads(backbone, layer, channels):
    """A network cut after a layer computes that layer's activations, as the ridge readout sees them."""
    import numpy as np

    from trainables.fitting.features import RANDOM_WEIGHTS_SEED, compute_layers

    torch.manual_seed(RANDOM_WEIGHTS_SEED)  # the readout's random weights
    cut = build_backbone(complete({"backbone": backbone, "trunk_layer": layer})).eval()
    assert cut.out_channels == channels
    images = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        maps = cut(torch.from_numpy(images))
    read = compute_layers(backbone, "random", [layer], 0, images, torch.device("cpu"))[layer]
    np.testing.assert_allclose(maps.flatten(1).numpy(), read, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"has no layer 'block99' \(valid: .*avgpool\)"):
        build_backbone(complete({"backbone": backbone, "trunk_layer": "block99"}))


def test_trainable_blocks_freezes_the_early_blocks():
    trunk = build_backbone(complete({"backbone": "resnet18", "trainable_blocks": 2}))
    flags = [all(p.requires_grad for p in b.parameters()) for b in trunk.blocks]
    assert flags == [False, False, False, True, True]
    trunk.train()
    assert not trunk.blocks[0].training and trunk.blocks[4].training
    frozen = build_backbone(complete({"backbone": "resnet18", "trainable_blocks": 0}))
    assert not any(p.requires_grad for p in frozen.parameters())


def test_decoder_head_is_data():
    head = DecoderHead(512, 168, pool=1, hidden=[7000, 7000], dropout=0.52)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 7000), (7000, 7000), (7000, 168)]
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.52 for m in head.modules()) == 2


def test_factorized_head_starts_as_the_global_average_readout():
    """Masks start uniform: each site first reads the globally pooled map through its channel weights."""
    torch.manual_seed(0)
    head = FactorizedHead(12, 5, pool=4)
    maps = torch.randn(3, 12, 8, 8)
    expected = maps.mean(dim=(2, 3)) @ head.channel.t() + head.bias
    torch.testing.assert_close(head(maps), expected, rtol=1e-5, atol=1e-6)
    # Per site: pool**2 mask weights + C channel weights + a bias, far fewer than a linear layer on the map.
    assert sum(p.numel() for p in head.parameters()) == 5 * (16 + 12 + 1)
    deep = FactorizedHead(12, 5, pool=4, hidden=[7], dropout=0.1, activation="elu")
    assert [(m.in_channels, m.out_channels) for m in deep.modules() if isinstance(m, torch.nn.Conv2d)] == [(12, 7)]
    assert deep.channel.shape == (5, 7) and deep(maps).shape == (3, 5)


@pytest.mark.parametrize("head", list(HEADS))
def test_memory_budget_counts_the_parameters_each_head_has(head):
    from trainables.fitting.network import parameter_count

    config = complete({"backbone": "efficientnet_lite0", "trunk_layer": "block12", "head": head, "head_pool": 4,
                              "head_hidden": [32]})
    model = build_model(config, n_sites=9)
    assert parameter_count(config, 9) == sum(p.numel() for p in model.parameters())


def test_input_size_resizes_before_the_trunk_in_networks_and_readouts():
    """Networks and layer readouts see the images at ``input_size``, whatever size they are stored at."""
    import numpy as np

    from trainables.fitting.features import RANDOM_WEIGHTS_SEED, FeatureCache, compute_layers

    images = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    resized = torch.nn.functional.interpolate(torch.from_numpy(images), size=(64, 64), mode="bilinear",
                                              align_corners=False, antialias=True).numpy()
    read = compute_layers("resnet18", "random", ["layer2"], 0, images, torch.device("cpu"), input_size=64)["layer2"]
    direct = compute_layers("resnet18", "random", ["layer2"], 0, resized, torch.device("cpu"))["layer2"]
    np.testing.assert_allclose(read, direct, rtol=1e-5, atol=1e-6)
    assert read.shape == (2, 128 * 8 * 8)  # layer2 is 8-fold downsampled: 64 px, not 32
    torch.manual_seed(RANDOM_WEIGHTS_SEED)
    net = build_backbone(complete({"backbone": "resnet18", "trunk_layer": "layer2", "input_size": 64})).eval()
    with torch.no_grad():
        np.testing.assert_allclose(net(torch.from_numpy(images)).flatten(1).numpy(), read, rtol=1e-4, atol=1e-5)
    # Cached features of another input size are another entry; keys made before the option existed are unchanged.
    assert FeatureCache.key("resnet18", "random", "layer2", 0, "f", "train", 64) != FeatureCache.key(
        "resnet18", "random", "layer2", 0, "f", "train")
    assert FeatureCache.key("resnet18", "random", "layer2", 0, "f", "train", 0).startswith("resnet18-random-layer2-p0-tr")


def test_unknown_backbone_lists_the_registry():
    with pytest.raises(ValueError, match="valid: shallow_cnn, vgg11_bn"):
        check_backbone("resnet9000")


def test_missing_imagenet_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFound) as err:
        build_backbone(complete({"backbone": "resnet34", "weights": "imagenet"}))
    message = str(err.value)
    assert "resnet34-b627a593.pth" in message and "weights='IMAGENET1K_V1'" in message and str(tmp_path) in message
    assert "\n" not in message


def test_cached_torchvision_weights_are_loaded(tmp_path, monkeypatch):
    """A checkpoint placed in the cache is what the backbone gets."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = torchvision.models.resnet18(weights=None)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    trunk = build_backbone(complete({"backbone": "resnet18", "weights": "imagenet"}))
    assert torch.equal(trunk.blocks[0][0].weight, reference.conv1.weight)


def test_efficientnet_lite0_imagenet_weights_and_normalisation():
    """The shipped weights, fed ImageNet-normalised stimuli, call china.jpg a building."""
    from efficientnet_lite_pytorch import EfficientNet
    from sklearn.datasets import load_sample_image

    from trainables.models.backbones import IMAGENET_NORM
    from trainables.models.weights import imagenet_checkpoint

    trunk = build_backbone(complete({"backbone": "efficientnet_lite0", "weights": "imagenet"})).eval()
    classifier = EfficientNet.from_name("efficientnet-lite0")
    classifier.load_state_dict(torch.load(imagenet_checkpoint("efficientnet_lite0"), weights_only=True))
    image = torch.tensor(load_sample_image("china.jpg")).permute(2, 0, 1).float()[None] / 255
    image = torch.nn.functional.interpolate(image, size=224, mode="bilinear", antialias=True)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET_NORM)
    stored = (image - mean) / std  # as the stimuli are stored
    with torch.no_grad():
        logits = classifier._fc(trunk(stored).mean(dim=(2, 3)))
    assert int(logits.argmax()) in {442, 497, 538, 663, 832}
    # Without the trunk's renormalisation the same weights see a different image.
    trunk.renormalise = False
    with torch.no_grad():
        wrong = classifier._fc(trunk(stored).mean(dim=(2, 3)))
    assert not torch.allclose(wrong, logits)


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.json")),
                         ids=lambda p: p.stem)
def test_shipped_examples_are_valid_and_build(path):
    """Every example config validates and its model predicts (ImageNet weights where shipped, random otherwise)."""
    import json

    config = complete(json.loads(path.read_text()))
    if config["weights"] == "imagenet" and config["backbone"] != "efficientnet_lite0":
        config["weights"] = "random"  # no torchvision checkpoints here; the architecture is what is checked
    model = build_model(config, n_sites=5).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 5)
