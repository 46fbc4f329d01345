"""Shared fixtures: a private data cache, tiny synthetic data sets, a lab's weights mirror, and the tiers' guard.

Tiers: ``pytest -m "not slow"`` is the quick tier (no Ray, no training); the full suite
adds the ``slow`` tests (they start Ray or train) and the ``cluster`` ones (a Ray cluster
and an MLflow server on loopback). A test that starts Ray without the ``slow`` marker
fails: every Ray instance of this test session lives in one private temporary folder
(``RAY_TMPDIR``, one per pytest-xdist worker), and a new session folder there after an unmarked test gives it
away. Both tiers run in two pytest-xdist workers (pyproject.toml's ``addopts``; ``-n 0`` for one process).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs two workers on the machine's cores: torch's OpenMP threads (one per core in each worker, in
    # the searches' drivers and in tests that train in-process) would spin against each other's, so one thread each.
    # Ray's trial workers set their own count from --cpus-per-trial.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from trainables.data.datasets import load_synthetic
from trainables.data.synthetic import SyntheticSpec, reference_ground_truth

TINY = SyntheticSpec(seed=0, resolution=32, images_per_object=10, n_repetitions=4)
# Ray's own folders (sockets, logs) for this test session: short (Unix socket paths are limited) and private.
RAY_TMPDIR = tempfile.mkdtemp(prefix="rt", dir="/tmp")
os.environ["RAY_TMPDIR"] = RAY_TMPDIR


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(RAY_TMPDIR, ignore_errors=True)


def ray_sessions() -> set[str]:
    """The Ray sessions started in this test session so far (one folder each under RAY_TMPDIR/ray)."""
    folder = Path(RAY_TMPDIR) / "ray"
    return {p.name for p in folder.glob("session_2*")} if folder.is_dir() else set()


@pytest.fixture(autouse=True)
def ray_needs_the_slow_marker(request):
    """Fail a test that starts Ray (in this process or a subprocess) without being marked ``slow``."""
    before = ray_sessions()
    yield
    if not request.node.get_closest_marker("slow") and ray_sessions() - before:
        pytest.fail(f"{request.node.nodeid} started Ray but is not marked slow", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Keep the synthetic-data cache of the test run away from the user's; pytest-xdist's workers share one (the
    cache writes each file whole, under a temporary name, so two workers drawing the same data set do no harm)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        path = tmp_path_factory.getbasetemp().parent / "cache"  # the workers' base folders are siblings
        path.mkdir(exist_ok=True)
    else:
        path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("ITSEARCH_CACHE")
    os.environ["ITSEARCH_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("ITSEARCH_CACHE", None)
    else:
        os.environ["ITSEARCH_CACHE"] = old


@pytest.fixture(scope="session")
def ground_truth(private_cache):
    """The latents of ``TINY``'s 640 images, their reference rendering's Lite0 maps and the response terms.

    Computed once per test run (tens of seconds of Lite0 on a CPU): pytest-xdist's workers share it through the
    private cache, the second one waiting for the first one's result rather than computing it too.
    """
    import fcntl
    import pickle

    path = private_cache / f"{TINY.key()}-ground-truth.pkl"
    with open(private_cache / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.is_file():
            building = path.with_name(f".{path.name}.{os.getpid()}")
            with open(building, "wb") as f:
                pickle.dump(reference_ground_truth(TINY), f)
            os.replace(building, path)
        with open(path, "rb") as f:
            return {"spec": TINY, **pickle.load(f)}


@pytest.fixture(scope="session")
def tiny_data(private_cache, ground_truth):
    """640 images at 32 px (518 / 58 / 64), 168 sites."""
    return load_synthetic(TINY, private_cache, terms=ground_truth["terms"])


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output to the tests
        pass


class Mirror(SimpleNamespace):
    """A lab's mirror of torchvision checkpoints: a folder, served over HTTP on 127.0.0.1, with a SHA256SUMS manifest.

    This machine cannot download the real ImageNet checkpoints, so the files are torchvision's own *randomly
    initialised* state dicts under the real file names: they exercise the plumbing (look-up, download, verification,
    loading into each architecture), not the weights' values. A file is written the first time a test asks for its
    architecture (:meth:`add`), so a test pays only for the architectures it uses.
    """

    def add(self, *archs: str) -> "Mirror":
        import hashlib

        import torch
        import torchvision

        from trainables.models.weights import IMAGENET_WEIGHTS, MANIFEST

        with self.lock:
            for arch in archs:
                path = self.folder / IMAGENET_WEIGHTS[arch].filename()
                if not path.exists():
                    torch.save(getattr(torchvision.models, arch)(weights=None).state_dict(), path)
                    self.sums[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
            (self.folder / MANIFEST).write_text("".join(f"{h}  {n}\n" for n, h in sorted(self.sums.items())))
        return self


@pytest.fixture(scope="session")
def checkpoint_mirror(tmp_path_factory):
    """The mirror (see :class:`Mirror`), empty until a test adds the architectures it needs."""
    folder = tmp_path_factory.mktemp("mirror")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Mirror(folder=folder, url=f"http://127.0.0.1:{server.server_address[1]}", sums={}, lock=threading.Lock())
    server.shutdown()


# pytest-xdist gives each worker whole modules (``--dist loadfile``: a module's fixtures are built once), in the
# order of the collection. The modules that run longest (chains of searches, minutes each) go first and the quick
# tier's modules last, so that the two workers end together instead of one waiting on a long module started late.
LONGEST_FIRST = ("test_resume.py", "test_cluster.py", "test_search.py", "test_shared_study.py")


def pytest_collection_modifyitems(items):
    slow = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST) + (item.path not in slow)

    items.sort(key=rank)  # stable: each module's tests keep their order
