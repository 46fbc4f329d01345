"""Recordings: the h5 schema and its validating loader.

Schema (that of the recordings file ``IT_data.h5``): ``stimulus_{train,val,test}`` float32 (N, 3, H, W)
ImageNet-normalised; ``spikes_{train,val}`` float32 (N, n_sites) trial-averaged;
``object_{train,val,test}`` latin-1 byte strings (N,). Optional: ``reps_val``
float32 (R, N_val, n_sites) single trials, from which the noise ceiling is computed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from trainables.core.metrics import split_half_reliability

log = logging.getLogger(__name__)

REQUIRED_KEYS = (
    "stimulus_train", "stimulus_val", "stimulus_test",
    "spikes_train", "spikes_val",
    "object_train", "object_val", "object_test",
)  # fmt: skip
OPTIONAL_KEYS = ("reps_val",)


class DataError(ValueError):
    """A recordings file that does not follow the schema; the message names the key."""


@dataclass
class ITData:
    """One data set in memory.

    Attributes
    ----------
    stimulus_train, stimulus_val, stimulus_test : array, shape (N, 3, H, W), float32
    spikes_train, spikes_val : array, shape (N, n_sites), float32
    object_train, object_val, object_test : array of str, shape (N,)
    noise_ceiling_val : array, shape (n_sites,) or None
        Split-half (Spearman-Brown) reliability of ``spikes_val``: the EV ceiling.
    name : str
        ``synthetic-...`` key or the file path.
    fingerprint : str
        Short content hash; identical data give identical fingerprints.
    """

    stimulus_train: np.ndarray
    spikes_train: np.ndarray
    object_train: np.ndarray
    stimulus_val: np.ndarray
    spikes_val: np.ndarray
    object_val: np.ndarray
    stimulus_test: np.ndarray
    object_test: np.ndarray
    noise_ceiling_val: np.ndarray | None = None
    name: str = ""
    fingerprint: str = field(default="")

    @property
    def n_sites(self) -> int:
        return self.spikes_train.shape[1]

    @property
    def resolution(self) -> int:
        return self.stimulus_train.shape[-1]

    def describe(self) -> str:
        ceiling = "" if self.noise_ceiling_val is None else f", EV ceiling {self.noise_ceiling_val.mean():.3f}"
        return (
            f"{self.name}: {len(self.spikes_train)}/{len(self.spikes_val)}/{len(self.object_test)} images "
            f"(train/val/test) at {self.resolution} px, {self.n_sites} sites{ceiling}"
        )


def _fingerprint(arrays: dict) -> str:
    """Hash of the responses, object names and a strided sample of the images (fast on 2 GB)."""
    h = hashlib.sha1()
    for key in sorted(arrays):
        a = arrays[key]
        if key.startswith("stimulus"):
            a = a.reshape(len(a), -1)[:, ::97]
        h.update(key.encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def validate_arrays(arrays: dict, source: str) -> None:
    """Check keys, ranks, agreeing shapes and finite values.

    Raises
    ------
    DataError
        Naming the first offending key.
    """
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise DataError(f"{source}: missing key '{key}'")
    for part in ("train", "val", "test"):
        stim = arrays[f"stimulus_{part}"]
        if stim.ndim != 4 or stim.shape[1] != 3:
            raise DataError(f"{source}: key 'stimulus_{part}' must be 4-D (N, 3, H, W), got shape {stim.shape}")
        if stim.shape[2] != stim.shape[3] or stim.shape[2] < 16:
            raise DataError(f"{source}: key 'stimulus_{part}' must hold square images of at least 16 px, got {stim.shape}")
        obj = arrays[f"object_{part}"]
        if obj.ndim != 1 or len(obj) != len(stim):
            raise DataError(f"{source}: key 'object_{part}' has shape {obj.shape}, expected ({len(stim)},)")
    if len({arrays[f"stimulus_{p}"].shape[1:] for p in ("train", "val", "test")}) != 1:
        raise DataError(f"{source}: key 'stimulus_val' image size differs from 'stimulus_train'")
    for part in ("train", "val"):
        spikes = arrays[f"spikes_{part}"]
        n = len(arrays[f"stimulus_{part}"])
        if spikes.ndim != 2 or spikes.shape[0] != n:
            raise DataError(f"{source}: key 'spikes_{part}' has shape {spikes.shape}, expected ({n}, n_sites)")
    if arrays["spikes_val"].shape[1] != arrays["spikes_train"].shape[1]:
        raise DataError(f"{source}: key 'spikes_val' has {arrays['spikes_val'].shape[1]} sites, 'spikes_train' has "
                        f"{arrays['spikes_train'].shape[1]}")
    if "reps_val" in arrays:
        reps = arrays["reps_val"]
        if reps.ndim != 3 or reps.shape[1:] != arrays["spikes_val"].shape or reps.shape[0] < 2:
            raise DataError(f"{source}: key 'reps_val' has shape {reps.shape}, expected (R>=2, "
                            f"{arrays['spikes_val'].shape[0]}, {arrays['spikes_val'].shape[1]})")
    for key, a in arrays.items():
        if not key.startswith(("stimulus", "spikes", "reps")):
            continue
        if not np.issubdtype(a.dtype, np.number):
            raise DataError(f"{source}: key '{key}' must hold numbers, got dtype {a.dtype}")
        if not _all_finite(a):
            raise DataError(f"{source}: key '{key}' holds non-finite values (NaN or inf)")


def _all_finite(a: np.ndarray, rows: int = 256) -> bool:
    """``np.isfinite(a).all()`` a few rows at a time (2 GB of images would need a 0.5 GB mask at once)."""
    return all(np.isfinite(a[i : i + rows]).all() for i in range(0, len(a), rows))


def _decode(names: np.ndarray) -> np.ndarray:
    return np.array([n.decode("latin-1") if isinstance(n, bytes) else str(n) for n in names])


def from_arrays(arrays: dict, name: str) -> ITData:
    """Build an :class:`ITData` from validated schema arrays."""
    validate_arrays(arrays, name)
    ceiling = split_half_reliability(arrays["reps_val"]) if "reps_val" in arrays else None
    f32 = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items() if k.startswith(("stimulus", "spikes"))}
    return ITData(
        stimulus_train=f32["stimulus_train"], spikes_train=f32["spikes_train"],
        object_train=_decode(arrays["object_train"]),
        stimulus_val=f32["stimulus_val"], spikes_val=f32["spikes_val"],
        object_val=_decode(arrays["object_val"]),
        stimulus_test=f32["stimulus_test"], object_test=_decode(arrays["object_test"]),
        noise_ceiling_val=ceiling, name=name, fingerprint=_fingerprint(arrays),
    )  # fmt: skip


def load_h5(path: str | Path) -> ITData:
    """Load and validate a recordings file.

    Raises
    ------
    DataError
        File missing or unreadable, or not in the schema (the key is named).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            arrays = {k: f[k][()] for k in REQUIRED_KEYS + OPTIONAL_KEYS if k in f}
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as err:  # h5py's errors for a damaged file
        raise DataError(f"{path}: not a readable HDF5 file ({type(err).__name__}: {str(err)[:120]})") from None
    try:
        return from_arrays(arrays, str(path))
    except DataError:
        raise
    except (TypeError, ValueError, IndexError, AttributeError) as err:  # a key that is no array (a group, a scalar)
        raise DataError(f"{path}: not in the recordings' schema ({type(err).__name__}: {str(err)[:120]})") from None


def write_h5(arrays: dict, path: str | Path) -> None:
    """Write schema arrays to an h5 file atomically (a partial file is never left at ``path``, nor beside it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            for key, value in arrays.items():
                f.create_dataset(key, data=value)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_source(source: str) -> None:
    """Fail fast, before any work, on a data path that cannot be read."""
    if source != "synthetic" and not Path(source).is_file():
        raise DataError(f"data file not found: {source} (use 'synthetic' or a path to an IT_data.h5-style file)")
