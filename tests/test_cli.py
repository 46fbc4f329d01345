"""Bad input to every command line: one line on stderr, exit code 2, nothing written, no Ray started.

In-process (``main([...])``), quick. Each entry point also runs once as a real subprocess (the last tests here, and
the end-to-end tests elsewhere), so the ``python -m`` wiring is covered too.
"""

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from searchutil import TINY, refused

from analysis import compare, export, report
from trainables import search, train
from trainables.data import __main__ as data_cli
from trainables.data.synthetic import SyntheticSpec, generate

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TRAIN_FLAGS = ["--profile", "smoke", "--resolution", "32", "--images-per-object", "10", "--max-epochs", "3"]


@pytest.fixture(scope="module")
def arrays():
    return generate(SyntheticSpec(seed=0, resolution=32, images_per_object=3, n_repetitions=2))


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


BAD_DATA = {
    "missing key": (missing_key, "missing key 'spikes_train'"),
    "NaN": (nan_values, "key 'stimulus_train' holds non-finite values"),
    "wrong shape": (wrong_shape, "key 'spikes_val' has shape"),
    "not HDF5": (not_hdf5, "not a readable HDF5 file"),
}


@pytest.mark.parametrize("command", ["search", "train"])
@pytest.mark.parametrize("case", list(BAD_DATA))
def test_a_bad_data_file_is_one_line_exit_2_and_writes_nothing(tmp_path, arrays, capsys, command, case):
    make, message = BAD_DATA[case]
    data = make(arrays, tmp_path / "IT_data.h5")
    storage = tmp_path / "runs"
    config = tmp_path / "config.json"
    config.write_text('{"backbone": "shallow_cnn", "epochs": 1}')
    main, what = (search.main, ["--space", "shallow_cnn"]) if command == "search" else (train.main,
                                                                                         ["--config", str(config)])
    line = refused(main, [*what, "--data", str(data), "--storage", str(storage), "--profile", "smoke"], capsys)
    assert message in line and str(data) in line
    assert not storage.exists()


@pytest.mark.parametrize("args, message", [
    (["--space", "nope"], "argument --space: invalid choice: 'nope'"),
    (["--space", "shallow_cnn", "--searcher", "grid"], "argument --sampler/--searcher: invalid choice"),
    (["--space", "shallow_cnn", "--data", "/nonexistent/IT_data.h5"], "data file not found"),
    (["--space", "shallow_cnn", "--tracking-uri", "http://127.0.0.1:9"], "cannot be reached"),
    (["--space", "shallow_cnn", "--tracking-uri", "mysql://x"], "is not supported"),
    (["--space", "shallow_cnn", "--num-samples", "0"], "--num-samples must be >= 1"),
    (["--space", "shallow_cnn", "--time-budget", "soon"], "--time-budget 'soon' is not a duration"),
    (["--space", "shallow_cnn", "--name", "../x"], "--name '../x' must be a plain folder name"),
    (["--space", "shallow_cnn", "--name", "a/b"], "must be a plain folder name"),
    (["--resume", "--name", "never_ran"], "nothing to resume"),
    ([], "--space is required"),
])
def test_bad_search_input_exits_2_before_anything_is_written(tmp_path, capsys, args, message):
    storage = tmp_path / "runs"
    assert message in refused(search.main, [*args, "--storage", str(storage), *TINY], capsys)
    assert not storage.exists()


@pytest.mark.parametrize("flags, message", [
    (["--offline"], "--offline forbids downloading"),
    (["--weights-mirror", "http://127.0.0.1:9"], "cannot fetch"),
])
def test_full_profile_without_weights_and_no_way_to_get_them_is_one_line(tmp_path, monkeypatch, capsys, flags,
                                                                         message):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    storage = tmp_path / "runs"
    line = refused(search.main, ["--space", "resnet_depth", "--profile", "full", "--storage", str(storage), *flags,
                                 "--resolution", "32", "--images-per-object", "3"], capsys)
    assert message in line and "resnet18" in line
    assert not storage.exists()


def test_full_profile_with_checkpoints_missing_names_every_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    storage = tmp_path / "runs"
    line = refused(search.main, ["--space", "backbone_screen", "--profile", "full", "--offline", "--storage",
                                 str(storage), "--resolution", "32", "--images-per-object", "3"], capsys)
    assert "--profile full needs ImageNet weights missing for" in line
    for name in ("resnet34-b627a593.pth", "vgg11_bn-6002323d.pth", "alexnet-owt-7be5be79.pth"):
        assert name in line
    assert not storage.exists()


@pytest.mark.parametrize("config, message", [
    ({"backbone": "shallow_cnn", "learning_rate": 0.1}, "unknown config key 'learning_rate'"),
    ({"backbone": "shallow_cnn", "lr": "fast"}, "config key 'lr': expected"),
    ({"backbone": "shallow_cnn", "epochs": True}, "config key 'epochs': expected"),
    ({"backbone": "resnet9000"}, "unknown backbone 'resnet9000'"),
    ({"backbone": "shallow_cnn", "optimizer": "lbfgs"}, "'lbfgs' is not one of"),
    ({"backbone": "shallow_cnn", "input_size": 8}, "config key 'input_size': must be 0 (off) or 32 to 1024"),
    ({"backbone": "shallow_cnn", "head": "gaussian"}, "'gaussian' is not one of mlp, factorized"),
    ({"scheduler": "step", "gamma": -1}, "config key 'gamma': must be (0, 1), got -1"),
    ({"momentum": 2.0}, "config key 'momentum': must be [0, 1)"),
    ({"patience": 0}, "config key 'patience': must be >= 1"),
    ({"head_hidden": [100000, 100000]}, "config key 'head_hidden': every item must be 1 to 65536"),
    ({"head_pool": 8}, "config key 'head_pool': 8 exceeds the 2 x 2 feature map of shallow_cnn at 32 px"),
    ({"model": "gam"}, "config key 'model': 'gam' is not one of network, ridge, lookup"),
    ({"model": "ridge", "backbone": "resnet18", "layer": "layer9"}, "'layer9' is not a layer of resnet18"),
])
def test_a_bad_config_is_refused_before_any_work(tmp_path, capsys, config, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "out"
    line = refused(train.main, ["--config", str(path), "--out", str(out), "--storage", str(tmp_path / "runs"),
                                *TRAIN_FLAGS], capsys)
    assert message in line
    assert not out.exists() and not (tmp_path / "runs").exists()


def test_missing_files_and_unwritable_outputs_are_named(tmp_path, capsys):
    assert "cannot read config file" in refused(train.main, ["--config", str(tmp_path / "none.json")], capsys)
    assert "data file not found" in refused(train.main, ["--config", str(EXAMPLES / "shallow_cnn.json"), "--data",
                                                         str(tmp_path / "IT_data.h5")], capsys)
    (tmp_path / "file").write_text("")
    line = refused(train.main, ["--config", str(EXAMPLES / "shallow_cnn.json"), "--storage",
                                str(tmp_path / "file" / "runs"), *TRAIN_FLAGS], capsys)
    assert "--storage" in line and "is a file, not a folder" in line
    line = refused(search.main, ["--space", "shallow_cnn", "--storage", str(tmp_path / "file" / "runs"), *TINY],
                   capsys)
    assert "--storage" in line and "is a file, not a folder" in line


def test_the_analysis_commands_report_errors_the_same_way(tmp_path, capsys):
    (tmp_path / "vgg_depth").mkdir()
    (tmp_path / "vgg_depth" / "search.json").write_text("{}")
    for main in (export.main, report.main):
        assert "searches found: vgg_depth" in refused(main, ["--experiment", "nope", "--storage", str(tmp_path)],
                                                      capsys)
    # A damaged plan is named, with what to do.
    line = refused(export.main, ["--experiment", "vgg_depth", "--storage", str(tmp_path)], capsys)
    assert f"{tmp_path / 'vgg_depth' / 'search.json'} is damaged" in line
    assert "no trained models under" in refused(compare.main, ["--storage", str(tmp_path)], capsys)
    (tmp_path / "train" / "m").mkdir(parents=True)
    (tmp_path / "train" / "m" / "metrics.json").write_text('{"ev": 0.1')
    assert "metrics.json cannot be read" in refused(compare.main, ["--storage", str(tmp_path)], capsys)
    assert "argument --top: invalid int value" in refused(export.main, ["--experiment", "x", "--top", "k"], capsys)


def test_the_synth_command_checks_its_flags_before_drawing(tmp_path, capsys):
    assert "--resolution must be >= 16" in refused(data_cli.main, ["synth", "--out", str(tmp_path / "d.h5"),
                                                                   "--resolution", "8"], capsys)
    (tmp_path / "file").write_text("")
    line = refused(data_cli.main, ["synth", "--out", str(tmp_path / "file" / "d.h5")], capsys)
    assert "--out" in line and "is a file, not a folder" in line
    assert not list(tmp_path.glob("**/*.tmp*"))


ENTRY_POINTS = [
    ("trainables.search", ["--space", "nope"], "invalid choice"),
    ("trainables.train", ["--config", "/nonexistent.json"], "cannot read config file"),
    ("trainables.data", ["synth", "--out", "x.h5", "--resolution", "8"], "--resolution must be >= 16"),
    ("analysis.export", ["--experiment", "nope", "--storage", "/nonexistent"], "no search 'nope'"),
    ("analysis.report", ["--experiment", "nope", "--storage", "/nonexistent"], "no search 'nope'"),
    ("analysis.compare", ["--storage", "/nonexistent"], "no trained models"),
]


def test_each_entry_point_runs_as_a_module_and_fails_in_one_line():
    """All six at once: each spends its time importing, one core apiece."""
    running = [(module, message, subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
                                                  stderr=subprocess.PIPE, text=True))
               for module, args, message in ENTRY_POINTS]
    for module, message, proc in running:
        _, err = proc.communicate(timeout=180)
        lines = err.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], f"{module}: {err}"
