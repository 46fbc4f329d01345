"""The ladder's pieces that need no Ray: every rung of a study exists whatever the sampler, a study's rows, which final
trainings are done, and the refusals before any work. The ladder end to end is in test_ladder_run.py."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import optuna
import pytest

from search_spaces.context import BoundSpace, SpaceContext
from studyutil import NAME, build_study
from trainables.study.plan.probe import ProbedSpace


class FirstChoice(optuna.samplers.BaseSampler):
    """A sampler that would miss rungs: every categorical hyperparameter at its first choice, every number at its
    low end."""

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, name, distribution):
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            return distribution.choices[0]
        return distribution.low


@pytest.mark.parametrize("space, rows", [("layer_sweep", 16), ("ridge_pixels", 12)])
def test_every_combination_of_a_space_s_ladder_axes_is_tried_before_any_repeats_whatever_the_sampler(tmp_path, space,
                                                                                                     rows):
    """With a sampler that picks the first choice of everything, a search still visits each combination of its
    categorical ladder axes once in its first trials (the probed space's first points), then samples as it likes."""
    from trainables.study.tune.searchers import StudySearcher

    ctx = SpaceContext(pretrained=frozenset({"efficientnet_lite0"}), max_epochs=1)
    probed = ProbedSpace.of(space, ctx, image_size=32)
    assert len(probed.grid) == rows
    axes = tuple(probed.grid[0])

    def searcher(points):
        return StudySearcher(space=BoundSpace(space, ctx), metric="best_inner_ev", mode="max",
                             points_to_evaluate=points or None, sampler=FirstChoice(), study_name=f"s{bool(points)}",
                             storage=optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}"))

    grid = searcher(probed.first_points())
    seen = [tuple(grid.suggest(f"t{i}")[a] for a in axes) for i in range(rows)]
    assert len(set(seen)) == rows  # every combination once, none twice
    alone = searcher([])
    assert len({tuple(alone.suggest(f"u{i}")[a] for a in axes) for i in range(rows)}) == 1  # the sampler alone: one


def test_a_study_without_ladder_axes_gives_one_row_its_exported_config(tmp_path):
    from trainables.study.export.rungs import study_rungs

    storage = build_study(tmp_path / "runs")
    (rung,) = study_rungs(storage / NAME)
    assert (rung.study, rung.group, rung.source, rung.axes, rung.deterministic) == (
        NAME, "trained from scratch", "search", {}, False)
    assert rung.trial_id == "t1" and rung.config["provenance"]["trial_id"] == "t1"  # the best completed trial
    assert rung.label.startswith(f"{NAME}: width_mult=") and rung.slug.startswith("shallow-cnn-width-mult")


def test_a_final_training_is_done_only_for_its_config_seed_and_data(tmp_path):
    from trainables.fitting.families import complete
    from trainables.study.run.finals import FinalRun, is_done

    config = complete({"backbone": "shallow_cnn"})
    run = FinalRun("s/r", config, tmp_path / "seed_0")
    assert not is_done(run, "abc")
    run.out.mkdir()
    (run.out / "config.json").write_text(json.dumps(config))
    assert not is_done(run, "abc")  # metrics.json is written last: a run cut short has none
    (run.out / "metrics.json").write_text(json.dumps({"ev": 0.1, "r_mean": 0.3, "r_median": 0.3, "data_fingerprint": "abc"}))
    assert is_done(run, "abc") and not is_done(run, "other data")
    assert not is_done(FinalRun("s/r", {**config, "seed": 1}, run.out), "abc")


def test_the_ladder_refuses_bad_input_in_one_line_before_any_work(tmp_path, capsys):
    from searchutil import refused
    from trainables import ladder
    from trainables.study.plan.search_plan import DataPlan, read_plan, write_plan

    storage = build_study(tmp_path / "runs")
    capsys.readouterr()  # the set-up's own output (MLflow's first database, when it is the process's first)
    data = ["--data", str(storage / "data.h5")]
    assert "--seeds must be >= 1" in refused(ladder.main, ["--seeds", "0", "--storage", str(storage), *data], capsys)
    line = refused(ladder.main, ["--studies", "nosuch", "--storage", str(storage), *data], capsys)
    assert "unknown study 'nosuch'" in line
    # The study in the storage ran on other data (its plan names another fingerprint than the ladder's data).
    line = refused(ladder.main, ["--studies", NAME, "--storage", str(storage), *data], capsys)
    assert f"study '{NAME}'" in line and "not-these-data" in line
    damaged = tmp_path / "damaged"
    shutil.copytree(storage, damaged)
    (damaged / NAME / "trial_t0" / "params.json").write_text("{")
    line = refused(ladder.main, ["--studies", NAME, "--storage", str(damaged), "--data", str(damaged / "data.h5")],
                   capsys)
    assert "params.json cannot be read" in line
    # A study drawn from other synthetic data than the ladder's flags: refused before the ladder draws any.
    drawn = tmp_path / "drawn"
    shutil.copytree(storage, drawn)
    write_plan(replace(read_plan(drawn / NAME), data=DataPlan("synthetic", 0, 32, 16)), drawn / NAME)
    line = refused(ladder.main, ["--studies", NAME, "--storage", str(drawn), "--resolution", "32",
                                 "--images-per-object", "8"], capsys)
    assert f"study '{NAME}'" in line and "16 images per object; the ladder's are seed 0 at 32 px, 8" in line
    # A finished study none of whose trials completed (the scheduler stopped both), on the ladder's data.
    empty = build_study(tmp_path / "empty", states=("PRUNED", "PRUNED"), finished=True, on_its_data=True)
    capsys.readouterr()
    line = refused(ladder.main, ["--studies", NAME, "--storage", str(empty), "--data", str(empty / "data.h5")], capsys)
    assert f"study '{NAME}'" in line and "has no completed trial" in line
    assert not any((s / "ladder").exists() for s in (storage, damaged, drawn, empty))


def test_the_ensemble_s_study_is_chosen_by_its_inner_validation_evidence_the_re_check_s_mean_where_it_raced():
    from trainables.ladder import inner_score
    from trainables.study.export.rungs import RungConfig

    def rung(trial_id, provenance):
        return RungConfig("s", "fine-tuned", "s", {}, trial_id, "search", {"provenance": provenance}, False)

    raced = {"value": 0.30, "recheck": {"table": [{"trial_id": "a", "mean": 0.21}, {"trial_id": "b", "mean": 0.25}]}}
    assert inner_score(rung("a", raced)) == 0.21  # not the search's 0.30, a best single run selected for being high
    assert inner_score(rung("c", raced)) == 0.30  # a trial the re-check did not race
    assert inner_score(rung("a", {"value": 0.1})) == 0.1  # a study without a re-check
    assert max([rung("a", raced), rung("b", raced)], key=inner_score).trial_id == "b"
