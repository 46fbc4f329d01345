"""The report's pieces that need no study: importances, edge-of-range warnings, the stimulus size.

Export, final training, compare and the report on a real study are in test_shared_study.py.
"""

import optuna

from analysis.report import edge_warnings, importances


def _study(objective):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=60)
    return study


def test_importance_keeps_conditional_parameters():
    def objective(trial):
        optimizer = trial.suggest_categorical("optimizer", ["adam", "sgd"])
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        if optimizer == "sgd":  # conditional: only exists for SGD, and it matters there
            momentum = trial.suggest_float("momentum", 0.0, 0.99)
            return -abs(momentum - 0.9) * 5 - abs(lr - 0.01)
        return -1.0 - abs(lr - 0.01)

    imp = importances(_study(objective))
    assert "momentum" in imp and imp["momentum"] > 0


def test_edge_of_range_warning():
    def at_the_edge(trial):
        return trial.suggest_float("lr", 1e-5, 1e-1, log=True) + 0 * trial.suggest_int("depth", 1, 8)

    warnings = edge_warnings(_study(at_the_edge))
    assert any(w.startswith("best lr") and "upper edge" in w for w in warnings)

    def in_the_middle(trial):
        return -abs(trial.suggest_float("x", 0.0, 1.0) - 0.5)

    assert edge_warnings(_study(in_the_middle)) == []


def test_report_says_at_what_size_the_networks_saw_the_stimuli():
    from analysis.report import input_resolution_note
    from trainables.study.records.trials import TrialRecord

    stored = input_resolution_note(224, [TrialRecord("a", {"input_size": 0})])
    assert stored.startswith("Networks saw the stimuli at 224 px, the size stored in the data")
    resized = input_resolution_note(224, [TrialRecord("a", {"input_size": 0}), TrialRecord("b", {"input_size": 128}),
                                               TrialRecord("c", {"input_size": 160})])
    assert "resized to 128, 160 px" in resized and "the others at 224 px" in resized
    assert "badly" not in resized  # a chosen input size is not the handicap of small stored images
    small = input_resolution_note(64, [TrialRecord("a", {"input_size": 128})])
    assert "stored at 64 px" in small and "see small images badly" in small
