"""The training core: fit, early stopping, divergence, schedules, resume, the device-resident batches."""

import numpy as np
import pytest
import torch

from trainables.fitting.families import complete
from trainables.fitting.loop import DeviceImages, DivergedError, Trainer, fit, predict

pytestmark = pytest.mark.slow  # every test here trains
BASE = {"backbone": "shallow_cnn", "head_hidden": [], "optimizer": "adam", "lr": 3e-3, "batch_size": 32,
        "epochs": 20, "patience": None}


def test_fit_lowers_the_loss_and_reaches_positive_inner_ev(tiny_data):
    history = fit(complete(BASE), tiny_data)
    losses = [r["train_loss"] for r in history.epochs]
    assert len(history.epochs) == 20
    assert losses[-1] < losses[0] - 0.05
    assert history.best["inner_ev"] > 0.02
    assert history.best["inner_ev"] == max(r["inner_ev"] for r in history.epochs)
    pred = predict(history.model, tiny_data.stimulus_val)
    assert pred.shape == tiny_data.spikes_val.shape and np.isfinite(pred).all()


def test_fit_is_deterministic_on_cpu(tiny_data):
    config = complete({**BASE, "epochs": 2})
    a, b = fit(config, tiny_data), fit(config, tiny_data)
    assert [r["train_loss"] for r in a.epochs] == [r["train_loss"] for r in b.epochs]
    c = fit({**config, "seed": 1}, tiny_data)
    assert [r["train_loss"] for r in a.epochs] != [r["train_loss"] for r in c.epochs]


def test_early_stopping_restores_the_best_weights(tiny_data):
    config = complete({**BASE, "epochs": 40, "patience": 2, "lr": 0.05})
    history = fit(config, tiny_data)
    assert len(history.epochs) == history.best_epoch + 2 < 40
    expected = history.best["inner_ev"]
    trainer = Trainer(config, tiny_data)
    trainer.model.load_state_dict(history.model.state_dict())
    from trainables.core.metrics import explained_variance
    from trainables.fitting.loop import predict_standardized

    z = predict_standardized(trainer.model, trainer.images, trainer.inner_idx).numpy()
    assert explained_variance(trainer.z_inner, z) == pytest.approx(expected, abs=1e-6)


def test_divergence_raises(tiny_data):
    config = complete({**BASE, "optimizer": "sgd", "lr": 1e6, "momentum": 0.9, "epochs": 5})
    with pytest.raises(DivergedError, match="diverged at epoch"):
        fit(config, tiny_data)


@pytest.mark.parametrize("scheduler", ["step", "cosine"])
def test_schedulers_and_optimizers_run(tiny_data, scheduler):
    config = complete({**BASE, "epochs": 3, "scheduler": scheduler, "step_size": 1, "optimizer": "sgd"})
    history = fit(config, tiny_data)
    lrs = [r["lr"] for r in history.epochs]
    if scheduler == "step":  # step_size 1, gamma 0.5
        assert lrs[1] == pytest.approx(lrs[0] * 0.5)
    else:  # annealed over the 3 epochs
        assert lrs[0] > lrs[1] > lrs[2]


def test_plateau_decays_after_its_patience_without_improvement(tiny_data):
    """A learning rate too small to move the weights: inner EV never improves after epoch 1, so the
    plateau scheduler (patience 3) halves the rate after epoch 5, and only then."""
    config = complete({**BASE, "epochs": 6, "scheduler": "plateau", "gamma": 0.5, "optimizer": "sgd",
                              "lr": 1e-12, "momentum": 0.0})
    lrs = [r["lr"] for r in fit(config, tiny_data).epochs]
    assert lrs[:5] == [lrs[0]] * 5
    assert lrs[5] == pytest.approx(lrs[0] * 0.5)


@pytest.mark.parametrize("head", [{}, {"head_hidden": [64], "head_dropout": 0.5}], ids=["linear", "dropout"])
def test_resume_from_state_continues_identically(tiny_data, head):
    """Stopping after 2 epochs and resuming gives the same 4-epoch run as no stop, dropout masks included."""
    config = complete({**BASE, **head, "epochs": 4})
    full = fit(config, tiny_data)
    saved = {}

    def grab(record, trainer):
        if record["epoch"] == 2:
            saved["state"] = trainer.state_dict()

    fit({**config, "epochs": 2}, tiny_data, on_epoch=grab)
    torch.manual_seed(1234)  # whatever the process did meanwhile, the resumed run draws as the uninterrupted one
    resumed = fit(config, tiny_data, resume_state=saved["state"])
    assert [r["train_loss"] for r in resumed.epochs] == [r["train_loss"] for r in full.epochs]


def test_channels_last_batches_keep_their_layout_and_values(tiny_data):
    """Gathering rows of the images stored channels-last gives channels_last batches (no layout change per batch)."""
    images = tiny_data.stimulus_train
    idx = torch.tensor([5, 0, 17, 3])
    stored = DeviceImages(images, torch.device("cpu"), channels_last=True)
    batch = stored.batch(idx)
    assert batch.shape == (4, 3, *images.shape[2:])
    assert batch.is_contiguous(memory_format=torch.channels_last)
    np.testing.assert_array_equal(batch.numpy(), images[idx.numpy()])
    # On the CPU by default the caller's array is read in place, never copied.
    shared = DeviceImages(images, torch.device("cpu"))
    assert shared.store.data_ptr() == images.__array_interface__["data"][0]
    np.testing.assert_array_equal(shared.batch(idx).numpy(), images[idx.numpy()])
