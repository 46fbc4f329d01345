"""Data sets by name: the synthetic default (drawn once per spec and cached) or a recordings file.

The synthetic data set is cached as an h5 file in the recordings' schema under
``$ITSEARCH_CACHE`` (default ``~/.cache/itsearch``); the ground truth's response
terms are cached beside it, since every resolution of one data seed shares them.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from trainables.core import layout
from trainables.data.schema import DataError, ITData, from_arrays, load_h5, write_h5
from trainables.data.synthetic import SyntheticSpec, generate, ground_truth_terms

log = logging.getLogger(__name__)


def _ground_truth(spec: SyntheticSpec, folder: Path) -> dict[str, np.ndarray]:
    """The spec's ground-truth response terms, cached: every resolution of one seed shares them."""
    path = folder / f"{spec.responses_key()}-terms.npz"
    if path.is_file():
        try:
            with np.load(path) as stored:
                return {key: stored[key] for key in stored.files}
        except (OSError, ValueError) as err:
            log.warning("cached ground truth unusable (%s); recomputing", err)
    terms = ground_truth_terms(spec)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    np.savez(tmp, **terms)
    os.replace(tmp, path)
    return terms


def load_synthetic(spec: SyntheticSpec = SyntheticSpec(), cache_dir: Path | None = None,
                   terms: dict[str, np.ndarray] | None = None) -> ITData:
    """The synthetic data set, generated once per spec and cached as an h5 file in the schema.

    ``terms``: the spec's ground-truth response terms when the caller has computed them
    (:func:`~trainables.data.synthetic.reference_ground_truth`), else read from the cache or computed.
    """
    path = Path(cache_dir or layout.cache_dir()) / f"{spec.key()}.h5"
    if path.is_file():
        try:
            return load_h5(path)
        except DataError as err:
            log.warning("cached synthetic data unusable (%s); regenerating", err)
    arrays = generate(spec, terms if terms is not None else _ground_truth(spec, path.parent))
    write_h5(arrays, path)
    log.info("cached synthetic data at %s", path)
    data = from_arrays(arrays, spec.key())
    return data


def load_dataset(source: str, spec: SyntheticSpec | None = None, cache_dir: Path | None = None) -> ITData:
    """``"synthetic"`` (with ``spec``) or a path to a recordings file."""
    if source == "synthetic":
        return load_synthetic(spec or SyntheticSpec(), cache_dir)
    return load_h5(source)
