import optuna
import pytest

from search_spaces import HELPER_PARAMS, SEARCH_SPACES, get_space, points_to_evaluate, scientific_parameter
from search_spaces.context import BoundSpace, SpaceContext
from searchutil import TINY, mlflow_runs, run_search
from trainables.core.config import FIELDS
from trainables.study.probe import probe_space
from trainables.models.weights import IMAGENET_WEIGHTS


@pytest.mark.parametrize("name", list(SEARCH_SPACES))
def test_space_samples_valid_configs_and_documents_itself(name):
    space = get_space(name)
    doc = space.__module__ and __import__(space.__module__, fromlist=["x"]).__doc__
    for word in ("scientific", "nuisance", "fixed"):
        assert word in doc, f"{name}: docstring does not mark {word} hyperparameters"
    assert scientific_parameter(name)
    configs = probe_space(name, n=40)
    assert len(configs) == 40
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(40):
        trial = study.ask()
        space(trial, SpaceContext())
        assert set(trial.params) <= set(FIELDS) | HELPER_PARAMS, set(trial.params) - set(FIELDS) - HELPER_PARAMS
        # Conditional hyperparameters are sampled only where they apply.
        if "momentum" in trial.params:
            assert trial.params["optimizer"] == "sgd"
        if "step_size" in trial.params and "scheduler" in trial.params:
            assert trial.params["scheduler"] == "step"
        study.tell(trial, 0.0)
    for point in points_to_evaluate(name):
        assert set(point) <= set(FIELDS) | HELPER_PARAMS


def test_report_points_are_in_their_spaces():
    vgg = probe_space("vgg_depth", n=1)[0]
    assert (vgg["vgg_blocks"], vgg["head_hidden"], vgg["head_dropout"], vgg["optimizer"]) == (5, [7000, 7000], 0.47, "adamw")
    head = probe_space("decoder_head", n=1)[0]
    assert (head["backbone"], head["head_hidden"], head["head_dropout"], head["optimizer"]) == ("resnet34", [7000, 7000], 0.52, "adam")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SEARCH_SPACES))
def test_every_space_runs_one_tiny_trial(tmp_path, name):
    storage = tmp_path / "runs"
    done = run_search("--space", name, "--storage", str(storage), "--num-samples", "1", "--max-epochs", "1",
                      "--resolution", "32", "--images-per-object", "3", "--profile", "smoke")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 completed, 0 pruned, 0 failed" in done.stdout
    _, parents, children = mlflow_runs(storage, name)
    assert len(parents) == 1 and len(children) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--space", "nope"], "argument --space: invalid choice: 'nope'"),
        (["--space", "shallow_cnn", "--searcher", "grid"], "argument --searcher: invalid choice"),
        (["--space", "shallow_cnn", "--data", "/nonexistent/IT_data.h5"], "data file not found"),
        (["--space", "shallow_cnn", "--tracking-uri", "http://127.0.0.1:9"], "cannot be reached"),
        (["--space", "shallow_cnn", "--tracking-uri", "mysql://x"], "is not supported"),
        (["--space", "shallow_cnn", "--num-samples", "0"], "--num-samples must be >= 1"),
        (["--resume", "--name", "never_ran"], "nothing to resume"),
        ([], "--space is required"),
    ],
)
def test_bad_input_exits_2_before_anything_is_written(tmp_path, args, message):
    storage = tmp_path / "runs"
    done = run_search(*args, "--storage", str(storage), *TINY, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert not storage.exists()


@pytest.mark.parametrize("name", list(SEARCH_SPACES))
def test_no_space_asks_for_weights_that_cannot_be_loaded(name):
    """In a context where only EfficientNet-Lite0's ImageNet weights can be loaded (a CPU machine with an empty
    torch cache), no config is pretrained on anything else, and ``weights`` is sampled only for Lite0."""
    ctx = SpaceContext(pretrained=frozenset({"efficientnet_lite0"}))
    for config in probe_space(name, ctx):
        if config["weights"] == "imagenet" and not (config["model"] == "ridge" and config["layer"] == "pixels"):
            assert config["backbone"] == "efficientnet_lite0", config
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    for _ in range(200):
        trial = study.ask()
        fixed = BoundSpace(name, ctx)(trial)
        if "weights" in trial.params:
            assert {**trial.params, **fixed}["backbone"] == "efficientnet_lite0"
        study.tell(trial, 0.0)


def test_backbone_screen_never_pairs_a_backbone_with_weights_it_has_none_of():
    configs = probe_space("backbone_screen")
    pairs = {(c["backbone"], c["weights"]) for c in configs}
    assert ("shallow_cnn", "imagenet") not in pairs and ("shallow_cnn", "random") in pairs
    assert {b for b, w in pairs if w == "imagenet"} == set(IMAGENET_WEIGHTS)


def test_the_epoch_cap_caps_and_never_raises():
    capped = probe_space("decoder_head", SpaceContext(max_epochs=8), n=5)
    assert {c["epochs"] for c in capped} == {8}
    above = probe_space("decoder_head", SpaceContext(max_epochs=100), n=5)
    assert {c["epochs"] for c in above} == {60}  # the recipe's 60, not the cap's 100
    assert {c["seed"] for c in probe_space("shallow_cnn", SpaceContext(seed=7), n=3)} == {7}


def test_a_space_may_not_fix_what_it_sampled():
    def both(trial, ctx):
        trial.suggest_float("lr", 1e-4, 1e-2)
        return {"lr": 1e-3}

    SEARCH_SPACES["both"] = both
    try:
        trial = optuna.create_study().ask()
        with pytest.raises(ValueError, match="both samples and fixes 'lr'"):
            BoundSpace("both", SpaceContext())(trial)
    finally:
        del SEARCH_SPACES["both"]
