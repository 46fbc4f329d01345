"""A bad data file stops both commands with one line and exit 2, before Ray starts or anything is written."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from trainables.data.synthetic import SyntheticSpec, generate

pytestmark = pytest.mark.slow
SPEC = SyntheticSpec(seed=0, resolution=32, images_per_object=3, n_repetitions=2)


def _write(path, arrays):
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
    return path


def missing_key(arrays, path):
    return _write(path, {k: v for k, v in arrays.items() if k != "spikes_train"})


def nan_values(arrays, path):
    stim = arrays["stimulus_train"].copy()
    stim[3, 1, 5, 7] = np.nan
    return _write(path, {**arrays, "stimulus_train": stim})


def wrong_shape(arrays, path):
    return _write(path, {**arrays, "spikes_val": arrays["spikes_val"][:-4]})


def not_hdf5(arrays, path):
    path.write_text("stimulus_train,spikes_train\n1,2\n")
    return path


CASES = {
    "missing key": (missing_key, "missing key 'spikes_train'"),
    "NaN": (nan_values, "key 'stimulus_train' holds non-finite values"),
    "wrong shape": (wrong_shape, "key 'spikes_val' has shape"),
    "not HDF5": (not_hdf5, "not a readable HDF5 file"),
}


@pytest.fixture(scope="module")
def arrays():
    return generate(SPEC)


@pytest.mark.parametrize("command", ["trainables.search", "trainables.train"])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_file_is_one_line_exit_2_and_writes_nothing(tmp_path, arrays, command, case):
    make, message = CASES[case]
    data = make(arrays, tmp_path / "IT_data.h5")
    storage = tmp_path / "runs"
    config = tmp_path / "config.json"
    config.write_text('{"backbone": "shallow_cnn", "epochs": 1}')
    what = ["--space", "shallow_cnn"] if command == "trainables.search" else ["--config", str(config)]
    done = subprocess.run([sys.executable, "-m", command, *what, "--data", str(data), "--storage", str(storage),
                           "--profile", "smoke"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], done.stderr[-2000:]
    assert str(data) in lines[0]
    assert not storage.exists() and done.stdout == ""
