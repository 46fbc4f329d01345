"""A model family is one module and one registry entry: ``tests/mean_family.py`` (every image predicted by a mean
training response), defined in the tests alone, runs through a search, its export, a final training and
``analysis.compare`` like the shipped families, with a config key of its own (``shrinkage``)."""

import json
from pathlib import Path

import mean_family
import pytest
from searchutil import assert_one_truth

import search_spaces
from analysis import compare
from trainables import search, train
from trainables.core.config import ConfigError
from trainables.fitting.families import FAMILIES, config_table, validate

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def registered():
    mean_family.register()
    yield
    FAMILIES.pop("mean", None)
    search_spaces.SEARCH_SPACES.pop("mean_response", None)


def test_a_family_s_own_key_is_declared_beside_it_alone(registered):
    """``shrinkage`` is accepted, defaulted and range-checked once the family is registered, shows in the generated
    key table, and no file of the project outside the tests names it."""
    assert validate({"model": "mean", "shrinkage": 0.25})["shrinkage"] == 0.25
    assert validate({"model": "mean"})["shrinkage"] == 1.0
    with pytest.raises(ConfigError, match=r"'shrinkage': must be 0 to 1, got 1.5"):
        validate({"model": "mean", "shrinkage": 1.5})
    assert "| `shrinkage` | mean | number | `1.0` | 0 to 1 |" in config_table()
    named = [str(p.relative_to(ROOT)) for top in ("trainables", "analysis", "search_spaces", "benchmarks", "docs")
             for p in (ROOT / top).rglob("*") if p.is_file() and p.suffix in (".py", ".md")
             and "shrinkage" in p.read_text()]
    assert not named and "shrinkage" not in (ROOT / "README.md").read_text() + (ROOT / "pyproject.toml").read_text()
    FAMILIES.pop("mean")
    with pytest.raises(ConfigError, match="unknown config key 'shrinkage'"):
        validate({"model": "network", "shrinkage": 0.5})


@pytest.mark.slow
def test_a_family_defined_in_the_tests_runs_through_search_export_train_and_compare(tmp_path, registered, capsys):
    storage = tmp_path / "runs"
    assert search.main(["--space", "mean_response", "--storage", str(storage), "--num-samples", "4",
                        "--resolution", "32", "--images-per-object", "6", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "4 completed, 0 pruned, 0 failed" in out
    # Deterministic (a seed changes nothing): its leaders are compared by the bootstrap, no seed runs.
    assert "compared by a paired bootstrap" in out
    ran = assert_one_truth(storage, "mean_response")  # params.json = Optuna = MLflow = trials.csv = the export
    assert len(ran) == 4 and all("shrinkage" in c["_sampled"] and 0 <= c["shrinkage"] <= 1 for c in ran)
    best = json.loads((storage / "mean_response" / "best_config.json").read_text())
    assert best["model"] == "mean" and best["provenance"]["recheck"]["runs"] == 0
    assert best["shrinkage"] == best["provenance"]["sampled"]["shrinkage"] < 1

    assert train.main(["--config", str(storage / "mean_response" / "best_config.json"), "--storage", str(storage)]) == 0
    metrics = json.loads((storage / "train" / "mean_response" / "metrics.json").read_text())
    # Object means, shrunk a little toward the grand mean, predict the images of their objects.
    assert metrics["shrinkage"] == best["shrinkage"] and metrics["ev"] > 0.02
    assert metrics["data_fingerprint"] == best["provenance"]["data_fingerprint"]
    grand = tmp_path / "grand.json"
    grand.write_text(json.dumps({**{k: v for k, v in best.items() if k != "provenance"}, "shrinkage": 1.0}))
    assert train.main(["--config", str(grand), "--storage", str(storage), "--resolution", "32",
                       "--images-per-object", "6", "--profile", "smoke"]) == 0
    # The grand mean alone predicts no image better than another: its EV is about 0.
    assert abs(json.loads((storage / "train" / "grand" / "metrics.json").read_text())["ev"]) < 0.05

    assert compare.main(["--storage", str(storage)]) == 0
    table = (storage / "compare.md").read_text()
    assert "| mean_response |" in table and "| grand |" in table
