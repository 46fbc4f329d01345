"""The project's shape: layers, registries, the search plan, the config schema, the docs that are generated from it.

Quick: nothing here starts Ray or trains.
"""

import ast
import json
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from trainables.core.config import ConfigError
from trainables.core.layout import SEARCH_FILE
from trainables.data.splits import inner_split
from trainables.fitting import readout
from trainables.fitting.families import FAMILIES, complete, config_fields, config_table, get_family, validate
from trainables.fitting.ridge import object_folds, ridge_cv
from trainables.models.backbones import BACKBONES, build_backbone
from trainables.study.plan.search_plan import PLAN_VERSION, PlanError, SearchPlan, check_resumable, read_plan

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ("trainables", "search_spaces", "analysis")
V1_PLAN = Path(__file__).parent / "data" / "search_v1.json"


def test_readme_config_table_is_the_one_generated_from_the_fields():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- config-keys -->\n(.*?)\n<!-- /config-keys -->", readme, re.S)
    assert block, "README has no <!-- config-keys --> block"
    assert block.group(1).strip() == config_table().strip(), "regenerate it with trainables.fitting.families.config_table"
    assert all(f"`{name}`" in block.group(1) for name in config_fields())


def test_lint_imports_keeps_the_layers_and_breaks_when_a_lower_layer_imports_a_higher_one(tmp_path):
    lint = Path(sys.executable).parent / "lint-imports"
    for name in (*LIBRARY, "pyproject.toml"):
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(ROOT / name, tmp_path / name)
    kept = subprocess.run([str(lint)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert kept.returncode == 0, kept.stdout[-2000:]
    metrics = tmp_path / "trainables" / "core" / "metrics.py"
    metrics.write_text(metrics.read_text() + "\nimport trainables.study.run.runner  # a lower layer importing a higher\n")
    broken = subprocess.run([str(lint)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert broken.returncode != 0 and "BROKEN" in broken.stdout
    assert "trainables.core.metrics -> trainables.study.run.runner" in broken.stdout


def test_function_level_imports_say_why():
    """An import inside a function is there for a reason (Ray's environment, a heavy or optional package): a comment
    on it, or just above its block of imports, says which."""
    silent = []
    for package in LIBRARY:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text().splitlines()
            inside = sorted({node.lineno for fn in ast.walk(ast.parse("\n".join(lines)))
                             if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
                             for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))})
            for n in inside:
                k = n
                while "#" not in lines[k - 1] and not lines[k - 2].strip().startswith("#") and (k - 1) in inside:
                    k -= 1
                if "#" not in lines[k - 1] and not lines[k - 2].strip().startswith("#"):
                    silent.append(f"{path.relative_to(ROOT)}:{n}")
    assert not silent, silent


@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_backbone_names_one_readout_layer_per_block(name):
    with torch.device("meta"):
        trunk = build_backbone(complete({"backbone": name, "vgg_blocks": 8}))
    assert len(trunk.blocks) == len(BACKBONES[name].layers)


def test_an_unknown_family_lists_the_registry_and_each_family_checks_its_own_keys():
    with pytest.raises(ConfigError, match="'model': 'gam' is not one of network, ridge, lookup"):
        validate({"model": "gam"})
    with pytest.raises(ConfigError, match="'layer': 'layer9' is not a layer of resnet18"):
        validate({"model": "ridge", "backbone": "resnet18", "layer": "layer9"})
    with pytest.raises(ConfigError, match="'weights': backbone 'shallow_cnn' has no ImageNet weights"):
        validate({"backbone": "shallow_cnn", "weights": "imagenet"})
    with pytest.raises(ConfigError, match="'head_pool': 4 exceeds the 2 x 2 feature map of shallow_cnn at 32 px"):
        validate({"backbone": "shallow_cnn", "head_pool": 4}, image_size=32)
    with pytest.raises(ConfigError, match="cannot read 16-px images"):
        validate({"backbone": "alexnet"}, image_size=16)
    assert validate({"backbone": "shallow_cnn", "head_pool": 2}, image_size=32)["head_pool"] == 2
    assert {f.name for f in FAMILIES.values()} == set(FAMILIES) and get_family("ridge").deterministic


@pytest.mark.parametrize("config, message", [
    ({"gamma": -1.0}, "'gamma': must be (0, 1), got -1.0"),
    ({"lr": float("nan")}, "'lr': must be > 0, got nan"),
    ({"lr": float("inf")}, "'lr': must be > 0, got inf"),
    ({"momentum": 1.5}, "'momentum': must be [0, 1)"),
    ({"patience": 0}, "'patience': must be >= 1"),
    ({"batch_size": 1}, "'batch_size': must be 2 to 65536"),
    ({"head_hidden": [7000, 10**9]}, "'head_hidden': every item must be 1 to 65536"),
    ({"width_mult": 1000}, "'width_mult': must be (0, 16]"),
    ({"seed": -1}, "'seed': must be 0 to 4294967295"),
    ({"inner_val_fraction": 0.5}, "'inner_val_fraction': must be (0, 0.5)"),
    ({"input_size": 16}, "'input_size': must be 0 (off) or 32 to 1024"),
])
def test_every_numeric_key_has_its_range(config, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        complete(config)
    numeric = [n for n, f in config_fields().items() if int in f.types or float in f.types or list in f.types]
    fields = config_fields()
    assert all(fields[n].range_text() for n in numeric), [n for n in numeric if not fields[n].range_text()]


def test_the_inner_split_keys_decide_the_selection_split(tiny_data):
    """``inner_val_fraction`` and ``split_seed`` are user settings: they change which images every family fits on."""
    base = complete({})
    fit_a, inner_a = inner_split(tiny_data.object_train, base["inner_val_fraction"], base["split_seed"])
    _, inner_b = inner_split(tiny_data.object_train, 0.3, 0)
    _, inner_c = inner_split(tiny_data.object_train, 0.1, 1)
    n = len(tiny_data.object_train)
    assert len(inner_a) == pytest.approx(0.1 * n, abs=64) and len(inner_b) == pytest.approx(0.3 * n, abs=64)
    assert len(inner_c) == len(inner_a) and set(inner_c) != set(inner_a) and not set(fit_a) & set(inner_a)
    lookup = get_family("lookup")
    scores = []
    for split in ({}, {"inner_val_fraction": 0.3}, {"split_seed": 1}):
        reports = []
        lookup.search_fit(complete({"model": "lookup", **split}), tiny_data, Recorder(reports))
        scores.append(reports[0][0]["inner_ev"])
    assert len(set(scores)) == 3


def test_the_readout_keys_cv_folds_and_alpha_per_site_choose_alpha(tiny_data):
    """``cv_folds`` sets the object-stratified folds of ridge's cross-validation; ``alpha_per_site`` gives each site
    its own alpha."""
    fit_idx, _ = inner_split(tiny_data.object_train, 0.1, 0)
    x = tiny_data.stimulus_train.reshape(len(tiny_data.stimulus_train), -1)[fit_idx].astype(np.float64)
    y, objects = tiny_data.spikes_train[fit_idx], tiny_data.object_train[fit_idx]
    for folds in (2, 7):
        config = complete({"model": "ridge", "cv_folds": folds, "pca_components": 20})
        got = readout.fit_readout_inner(config, tiny_data)["alpha"]
        x_scaled = x / np.sqrt(np.mean(np.var(x, axis=0)))
        expected = ridge_cv(None, y, object_folds(objects, folds, 0), readout.DEFAULT_ALPHAS, False, 20,
                            gram=torch.from_numpy(x_scaled @ x_scaled.T)).alpha
        assert got == pytest.approx(float(expected))
    per_site = readout.fit_readout_final(complete({"model": "ridge", "alpha_per_site": True}), tiny_data)
    assert np.asarray(per_site.alpha).shape == (tiny_data.n_sites,) and len(set(np.asarray(per_site.alpha))) > 1


class Recorder:
    """A TrialSession that keeps what a family reports."""

    feature_cache = None

    def __init__(self, reports):
        self.reports = reports

    def resume_state(self):
        return None

    def report(self, metrics, done, resumable=None, weights=None, inner_sums=None):
        self.reports.append((metrics, done))


def test_a_plan_round_trips_and_a_damaged_one_names_its_file(tmp_path):
    plan = read_plan_v1()
    again = replace(plan, version=PLAN_VERSION, references={"object ideal observer": 0.03})
    assert SearchPlan.from_json(again.to_json()) == again
    (tmp_path / SEARCH_FILE).write_text(again.to_json()[:200])
    with pytest.raises(PlanError, match=f"{tmp_path / SEARCH_FILE} is damaged"):
        read_plan(tmp_path)


def read_plan_v1() -> SearchPlan:
    return SearchPlan.from_json(V1_PLAN.read_text())


def test_a_study_of_the_earlier_release_is_read_but_refused_for_a_resume(tmp_path, capsys):
    plan = read_plan_v1()
    assert (plan.version, plan.space, plan.scheduler.name, plan.data.resolution) == (1, "shallow_cnn", "asha", 32)
    with pytest.raises(PlanError, match="written by an earlier release .plan version 1.: its Ray state"):
        check_resumable(plan, tmp_path)
    from trainables.search import main

    (tmp_path / "old").mkdir()
    shutil.copy(V1_PLAN, tmp_path / "old" / SEARCH_FILE)
    with pytest.raises(SystemExit) as exit_:
        main(["--resume", "--name", "old", "--storage", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and "cannot be resumed" in err[0]


def test_a_plan_holds_no_path_into_its_study():
    plan = json.loads(replace(read_plan_v1(), version=PLAN_VERSION, tracking=replace(
        read_plan_v1().tracking, uri=None)).to_json())
    assert "/tmp/oldstudy" not in json.dumps(plan)
