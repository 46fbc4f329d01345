import h5py
import numpy as np
import pytest

from trainables.data.__main__ import main as data_main
from trainables.data.schema import DataError, load_h5, write_h5
from trainables.data.splits import inner_split
from trainables.data.synthetic import SyntheticSpec, generate

SMALL = SyntheticSpec(seed=3, resolution=16, images_per_object=3, n_repetitions=4)


@pytest.fixture(scope="module")
def arrays():
    return generate(SMALL)


def test_generator_is_in_schema_and_depends_on_its_seed(arrays):
    other = generate(SyntheticSpec(seed=4, resolution=16, images_per_object=3, n_repetitions=4))
    assert not np.array_equal(arrays["spikes_train"], other["spikes_train"])
    n_train, n_val, n_test = SMALL.split_sizes()
    assert arrays["stimulus_train"].shape == (n_train, 3, 16, 16)
    assert arrays["spikes_val"].shape == (n_val, 168)
    assert arrays["object_test"].shape == (n_test,)
    assert arrays["stimulus_train"].dtype == np.float32
    # ImageNet-normalised: roughly zero mean per channel.
    assert np.abs(arrays["stimulus_train"].mean(axis=(0, 2, 3))).max() < 1.0


def test_default_sizes_are_the_real_ones():
    assert SyntheticSpec().split_sizes() == (2592, 288, 320)


def test_roundtrip_through_h5(tmp_path, arrays):
    path = tmp_path / "ok.h5"
    write_h5(arrays, path)
    data = load_h5(path)
    np.testing.assert_array_equal(data.spikes_train, arrays["spikes_train"])
    assert data.object_train[0] == arrays["object_train"][0].decode("latin-1")
    assert data.noise_ceiling_val.shape == (168,)
    assert 0.3 < data.noise_ceiling_val.mean() < 0.95
    assert len(data.fingerprint) == 12 and data.fingerprint == load_h5(path).fingerprint


def _broken(arrays, tmp_path, change):
    broken = dict(arrays)
    change(broken)
    path = tmp_path / "broken.h5"
    with h5py.File(path, "w") as f:
        for k, v in broken.items():
            f.create_dataset(k, data=v)
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("spikes_val"), "missing key 'spikes_val'"),
        (lambda a: a.update(spikes_train=a["spikes_train"][:-1]), "key 'spikes_train' has shape"),
        (lambda a: a.update(stimulus_val=a["stimulus_val"][:, 0]), "key 'stimulus_val' must be 4-D"),
        (lambda a: a.update(object_test=a["object_test"][:2]), "key 'object_test' has shape"),
        (lambda a: a.update(spikes_val=np.where(np.eye(*a["spikes_val"].shape) > 0, np.nan, a["spikes_val"])),
         "key 'spikes_val' holds non-finite"),
        (lambda a: a.update(spikes_val=a["spikes_val"][:, :5], reps_val=a["reps_val"][:, :, :5]),
         "key 'spikes_val' has 5 sites"),
    ],
)
def test_broken_files_name_the_key(arrays, tmp_path, change, message):
    with pytest.raises(DataError, match=message):
        load_h5(_broken(arrays, tmp_path, change))


def test_missing_and_non_h5_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_h5(tmp_path / "nope.h5")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5"):
        load_h5(junk)


def test_inner_split_is_stratified_and_seeded():
    objects = np.repeat([f"o{i}" for i in range(10)], 20)
    fit, inner = inner_split(objects, 0.1, seed=0)
    assert len(np.intersect1d(fit, inner)) == 0 and len(fit) + len(inner) == 200
    names, counts = np.unique(objects[inner], return_counts=True)
    assert len(names) == 10 and set(counts) == {2}
    np.testing.assert_array_equal(inner, inner_split(objects, 0.1, seed=0)[1])
    assert not np.array_equal(inner, inner_split(objects, 0.1, seed=1)[1])


def test_synth_command_writes_what_the_generator_draws_again(tmp_path, arrays, capsys):
    """The data command (in-process) draws the module's data set again: the generator is deterministic."""
    out = tmp_path / "synth.h5"
    assert data_main(["synth", "--out", str(out), "--seed", "3", "--resolution", "16", "--images-per-object", "3",
                      "--repetitions", "4"]) in (0, None)
    assert "wrote" in capsys.readouterr().out
    data = load_h5(out)
    np.testing.assert_array_equal(data.stimulus_train, arrays["stimulus_train"])
    np.testing.assert_array_equal(data.spikes_train, arrays["spikes_train"])
    np.testing.assert_array_equal(data.spikes_val, arrays["spikes_val"])


def test_synthetic_responses_are_more_than_the_object(tiny_data):
    """The object's mean response explains some of a site's variance, far from all (v3: about 3/4 here).

    In-sample, with 8 training images per object, the object means also fit about an eighth of the noise.
    """
    objects = tiny_data.object_train
    means = {o: tiny_data.spikes_train[objects == o].mean(0) for o in np.unique(objects)}
    by_object = np.stack([means[o] for o in objects])
    resid = tiny_data.spikes_train - by_object
    share = 1 - resid.var(0) / tiny_data.spikes_train.var(0)
    assert 0.1 < share.mean() < 0.4
