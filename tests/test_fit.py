import numpy as np
import pytest

from trainables.config import validate_config
from trainables.fit import DivergedError, Trainer, fit, predict

BASE = {"backbone": "shallow_cnn", "head_hidden": [], "optimizer": "adam", "lr": 3e-3, "batch_size": 32,
        "epochs": 20, "patience": None}


def test_fit_lowers_the_loss_and_reaches_positive_inner_ev(tiny_data):
    history = fit(validate_config(BASE), tiny_data)
    losses = [r["train_loss"] for r in history.epochs]
    assert len(history.epochs) == 20
    assert losses[-1] < losses[0] - 0.05
    assert history.best["inner_ev"] > 0.02
    assert history.best["inner_ev"] == max(r["inner_ev"] for r in history.epochs)
    pred = predict(history.model, tiny_data.stimulus_val)
    assert pred.shape == tiny_data.spikes_val.shape and np.isfinite(pred).all()


def test_fit_is_deterministic_on_cpu(tiny_data):
    config = validate_config({**BASE, "epochs": 2})
    a, b = fit(config, tiny_data), fit(config, tiny_data)
    assert [r["train_loss"] for r in a.epochs] == [r["train_loss"] for r in b.epochs]
    c = fit({**config, "seed": 1}, tiny_data)
    assert [r["train_loss"] for r in a.epochs] != [r["train_loss"] for r in c.epochs]


def test_early_stopping_restores_the_best_weights(tiny_data):
    config = validate_config({**BASE, "epochs": 40, "patience": 2, "lr": 0.05})
    history = fit(config, tiny_data)
    assert len(history.epochs) == history.best_epoch + 2 < 40
    expected = history.best["inner_ev"]
    trainer = Trainer(config, tiny_data)
    trainer.model.load_state_dict(history.model.state_dict())
    from trainables.fit import predict_standardized
    from analysis.metrics import explained_variance

    z = predict_standardized(trainer.model, trainer.x_inner).numpy()
    assert explained_variance(trainer.z_inner, z) == pytest.approx(expected, abs=1e-6)


def test_divergence_raises(tiny_data):
    config = validate_config({**BASE, "optimizer": "sgd", "lr": 1e6, "momentum": 0.9, "epochs": 5})
    with pytest.raises(DivergedError, match="diverged at epoch"):
        fit(config, tiny_data)


@pytest.mark.parametrize("scheduler", ["step", "cosine", "plateau"])
def test_schedulers_and_optimizers_run(tiny_data, scheduler):
    config = validate_config({**BASE, "epochs": 3, "scheduler": scheduler, "step_size": 1, "optimizer": "sgd"})
    history = fit(config, tiny_data)
    lrs = [r["lr"] for r in history.epochs]
    if scheduler == "step":  # step_size 1, gamma 0.5
        assert lrs[1] == pytest.approx(lrs[0] * 0.5)
    elif scheduler == "cosine":  # annealed over the 3 epochs
        assert lrs[0] > lrs[1] > lrs[2]
    else:  # plateau waits 3 epochs without improvement before it decays
        assert lrs == [lrs[0]] * 3


def test_resume_from_state_continues_identically(tiny_data):
    """Stopping after 2 epochs and resuming gives the same 4-epoch run as no stop."""
    config = validate_config({**BASE, "epochs": 4})
    full = fit(config, tiny_data)
    saved = {}

    def grab(record, trainer):
        if record["epoch"] == 2:
            saved["state"] = trainer.state_dict()

    fit({**config, "epochs": 2}, tiny_data, on_epoch=grab)
    resumed = fit(config, tiny_data, resume_state=saved["state"])
    assert [r["train_loss"] for r in resumed.epochs] == pytest.approx([r["train_loss"] for r in full.epochs])
