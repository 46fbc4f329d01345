"""Shared fixtures: a private data cache and tiny synthetic data sets."""

from __future__ import annotations

import os

import pytest

from trainables.data import load_synthetic
from trainables.synthetic import SyntheticSpec

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
