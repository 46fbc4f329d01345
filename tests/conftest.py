"""Shared fixtures: a private data cache and tiny synthetic data sets."""

from __future__ import annotations

import os
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from trainables.data.datasets import load_synthetic
from trainables.data.synthetic import SyntheticSpec

TINY = SyntheticSpec(seed=0, resolution=32, images_per_object=10, n_repetitions=4)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep the synthetic-data cache of the test run away from the user's."""
    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("ITSEARCH_CACHE")
    os.environ["ITSEARCH_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("ITSEARCH_CACHE", None)
    else:
        os.environ["ITSEARCH_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_data(private_cache):
    """640 images at 32 px (518 / 58 / 64), 168 sites."""
    return load_synthetic(TINY, private_cache)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output to the tests
        pass


@pytest.fixture(scope="session")
def checkpoint_mirror(tmp_path_factory):
    """A lab's mirror of the torchvision checkpoints the studies use, as a folder and served over HTTP on 127.0.0.1.

    This machine cannot download the real ImageNet checkpoints, so the files are torchvision's own *randomly
    initialised* state dicts under the real file names, with a ``SHA256SUMS`` manifest: they exercise the
    plumbing (look-up, download, verification, loading into each architecture), not the weights' values.
    """
    import hashlib

    import torch
    import torchvision

    from trainables.models.weights import IMAGENET_WEIGHTS, MANIFEST, TorchvisionWeights

    folder = tmp_path_factory.mktemp("mirror")
    sums = []
    for source in IMAGENET_WEIGHTS.values():
        if isinstance(source, TorchvisionWeights):
            path = folder / source.filename()
            torch.save(getattr(torchvision.models, source.arch)(weights=None).state_dict(), path)
            sums.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}")
    (folder / MANIFEST).write_text("\n".join(sums) + "\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(folder=folder, url=f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
