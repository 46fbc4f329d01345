"""ImageNet weights the torchvision way: looked up in the torch cache, else fetched once by the driver from a
lab's mirror (HTTP on 127.0.0.1 here, or a folder) or torchvision's URL, verified, and cached; never with
``--offline``. Real HTTP, real files, real searches.
"""

import hashlib
import shutil

import pytest
import torch

from trainables.models.weights import IMAGENET_WEIGHTS, MANIFEST, WeightsNotFound, WeightsPolicy, fetch_imagenet


def cached(home, name):
    return home / "hub" / "checkpoints" / IMAGENET_WEIGHTS[name].filename()


def test_fetch_from_an_http_mirror_fills_the_torch_cache_once(tmp_path, monkeypatch, checkpoint_mirror):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoint_mirror.add("resnet18")
    path = fetch_imagenet("resnet18", WeightsPolicy(mirror=checkpoint_mirror.url))
    assert path == cached(tmp_path, "resnet18")
    served = checkpoint_mirror.folder / path.name
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(served.read_bytes()).digest()
    state = torch.load(path, weights_only=True)
    assert "layer4.1.conv2.weight" in state
    # Once cached, nothing is fetched again: even offline, or with a mirror that is gone.
    assert fetch_imagenet("resnet18", WeightsPolicy(offline=True)) == path
    assert fetch_imagenet("resnet18", WeightsPolicy(mirror="http://127.0.0.1:9")) == path


def test_fetch_from_a_folder_mirror(tmp_path, monkeypatch, checkpoint_mirror):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    checkpoint_mirror.add("resnet34")
    path = fetch_imagenet("resnet34", WeightsPolicy(mirror=str(checkpoint_mirror.folder)))
    assert path.read_bytes() == (checkpoint_mirror.folder / path.name).read_bytes()


def test_a_file_that_fails_verification_is_refused_and_not_cached(tmp_path, monkeypatch, checkpoint_mirror):
    """Without a manifest the file is checked against the hash prefix in torchvision's file name, as torchvision
    does; a randomly initialised state dict does not match it."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    name = IMAGENET_WEIGHTS["resnet18"].filename()
    checkpoint_mirror.add("resnet18")
    shutil.copy(checkpoint_mirror.folder / name, mirror / name)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    with pytest.raises(WeightsNotFound, match="hash"):
        fetch_imagenet("resnet18", WeightsPolicy(mirror=str(mirror)))
    assert not cached(tmp_path / "home", "resnet18").exists()
    # A manifest that disagrees with the file is refused too.
    (mirror / MANIFEST).write_text(f"{'0' * 64}  {name}\n")
    with pytest.raises(WeightsNotFound, match="sha256"):
        fetch_imagenet("resnet18", WeightsPolicy(mirror=str(mirror)))


def test_offline_and_unreachable_sources_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFound, match="--offline"):
        fetch_imagenet("resnet18", WeightsPolicy(offline=True))
    with pytest.raises(WeightsNotFound, match="127.0.0.1:9"):
        fetch_imagenet("resnet18", WeightsPolicy(mirror="http://127.0.0.1:9"))
    with pytest.raises(WeightsNotFound, match="no ImageNet weights"):
        fetch_imagenet("shallow_cnn", WeightsPolicy())
