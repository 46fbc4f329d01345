import math

import optuna
import pytest

from search_spaces import HELPER_PARAMS, SEARCH_SPACES, get_space, points_to_evaluate, scientific_parameter
from search_spaces.context import BoundSpace, SpaceContext
from trainables.fitting.families import config_fields, get_family
from trainables.models.weights import IMAGENET_WEIGHTS
from trainables.study.plan.probe import ProbedSpace, probe_space


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
        assert set(trial.params) <= set(config_fields()) | HELPER_PARAMS, set(trial.params) - set(config_fields()) - HELPER_PARAMS
        # Conditional hyperparameters are sampled only where they apply.
        if "momentum" in trial.params:
            assert trial.params["optimizer"] == "sgd"
        if "step_size" in trial.params and "scheduler" in trial.params:
            assert trial.params["scheduler"] == "step"
        study.tell(trial, 0.0)
    for point in points_to_evaluate(name):
        assert set(point) <= set(config_fields()) | HELPER_PARAMS


def test_report_points_are_in_their_spaces():
    vgg = probe_space("vgg_depth", n=1)[0]
    assert (vgg["vgg_blocks"], vgg["head_hidden"], vgg["head_dropout"], vgg["optimizer"]) == (5, [7000, 7000], 0.47, "adamw")
    head = probe_space("decoder_head", n=1)[0]
    assert (head["backbone"], head["head_hidden"], head["head_dropout"], head["optimizer"]) == ("resnet34", [7000, 7000], 0.52, "adam")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SEARCH_SPACES))
def test_every_space_s_first_config_fits_and_reports(tmp_path, tiny_data, name):
    """Each study's first config (as a search would run it, one epoch) through its family's search fit: it reports a
    finite inner-split score once done and keeps what the re-check resamples. No Ray: the Ray path is the search
    tests'."""
    config = probe_space(name, SpaceContext(pretrained=frozenset({"efficientnet_lite0"}), max_epochs=1), n=1,
                         image_size=32)[0]
    reports = []
    get_family(config["model"]).search_fit(config, tiny_data, Recorder(reports, tmp_path / "features"))
    metrics, done, sums = reports[-1]
    assert done and math.isfinite(metrics["inner_ev"]) and math.isfinite(metrics["inner_r"])
    assert sums is not None and set(sums["objects"]) <= set(tiny_data.object_train)


class Recorder:
    """A TrialSession that keeps what a family reports (and the per-object sums it hands over at the end)."""

    def __init__(self, reports, feature_cache):
        self.reports, self.feature_cache = reports, feature_cache

    def resume_state(self):
        return None

    def report(self, metrics, done, resumable=None, weights=None, inner_sums=None):
        self.reports.append((metrics, done, inner_sums() if done and inner_sums else None))


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


@pytest.mark.parametrize("name", list(SEARCH_SPACES))
def test_a_space_without_some_imagenet_weights_is_its_configs_with_those_weights_random(name):
    """What a search whose ImageNet weights are missing runs (:meth:`ProbedSpace.without`, no new probe) is what the
    space produces in the narrower context: the same models, backbones, weights and readout layers (what the
    families prepare and the resources are sized by) as a probe in that context gives (the continuous values of two
    random samples differ)."""
    full = ProbedSpace.of(name, SpaceContext(), image_size=None)
    missing = frozenset(IMAGENET_WEIGHTS) - {"efficientnet_lite0"}
    derived = full.without(missing)
    again = ProbedSpace.of(name, SpaceContext(pretrained=frozenset({"efficientnet_lite0"})), image_size=None)
    kinds = ("model", "backbone", "weights", "layer", "feature_pool", "input_size", "trunk_layer")
    assert derived.ctx == again.ctx
    assert {tuple(c[k] for k in kinds) for c in derived.configs} == {tuple(c[k] for k in kinds) for c in again.configs}


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


def test_one_search_probes_its_space_once_and_validates_each_trial_s_config_once(tmp_path, caplog, monkeypatch):
    """The command probes the space once (at the data's image size) and hands the probed space to the runner, which
    probes nothing; the searcher validates each trial's config once, when it samples it."""
    import logging

    from studyutil import build_study

    from trainables import search
    from trainables.study.run import runner
    from trainables.study.tune import searchers

    storage = build_study(tmp_path / "runs")
    args = search.parse_args(["--space", "shallow_cnn", "--storage", str(tmp_path / "new"), "--data",
                              str(storage / "data.h5"), "--profile", "smoke", "--recheck-top", "0"])
    with caplog.at_level(logging.DEBUG, logger="trainables.study.plan.probe"):
        plan, data, probed = search.new_study(args)
        runner.Study(plan, tmp_path / "new" / "shallow_cnn", data, probed)
    assert len([r for r in caplog.records if r.getMessage().startswith("probed space shallow_cnn")]) == 1
    assert probed.image_size == 16 == data.resolution
    validated = []
    complete = searchers.complete
    monkeypatch.setattr(searchers, "complete", lambda config: validated.append(config) or complete(config))
    searcher = searchers.StudySearcher(space=BoundSpace("shallow_cnn", probed.ctx), metric="best_inner_ev", mode="max",
                                       sampler=optuna.samplers.RandomSampler(seed=0), study_name="s",
                                       storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}"))
    configs = [searcher.suggest(f"t{i}") for i in range(3)]
    assert len(validated) == 3 and all(c["width_mult"] == v["width_mult"] for c, v in zip(configs, validated))
