"""A model family is one module and one registry entry: ``tests/mean_family.py`` (every image predicted by the mean
training response), defined in the tests alone, runs through a search, its export, a final training and
``analysis.compare`` like the shipped families."""

import json

import mean_family
import pytest

import search_spaces
from analysis import compare
from trainables import search, train
from trainables.fitting.families import FAMILIES

pytestmark = pytest.mark.slow


@pytest.fixture
def registered():
    mean_family.register()
    yield
    FAMILIES.pop("mean", None)
    search_spaces.SEARCH_SPACES.pop("mean_response", None)


def test_a_family_defined_in_the_tests_runs_through_search_export_train_and_compare(tmp_path, registered, capsys):
    storage = tmp_path / "runs"
    assert search.main(["--space", "mean_response", "--storage", str(storage), "--num-samples", "3",
                        "--resolution", "32", "--images-per-object", "6", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "3 completed, 0 pruned, 0 failed" in out
    # Deterministic (a seed changes nothing): its leaders are compared by the bootstrap, no seed runs.
    assert "compared by a paired bootstrap" in out
    best = json.loads((storage / "mean_response" / "best_config.json").read_text())
    assert best["model"] == "mean" and best["provenance"]["recheck"]["runs"] == 0
    params = [json.loads(p.read_text()) for p in (storage / "mean_response").glob("trial_*/params.json")]
    assert len(params) == 3 and {p["model"] for p in params} == {"mean"}

    assert train.main(["--config", str(storage / "mean_response" / "best_config.json"), "--storage", str(storage)]) == 0
    metrics = json.loads((storage / "train" / "mean_response" / "metrics.json").read_text())
    # The training mean predicts no image better than another: its EV is about 0, its r undefined.
    assert abs(metrics["ev"]) < 0.05 and metrics["data_fingerprint"] == best["provenance"]["data_fingerprint"]

    assert compare.main(["--storage", str(storage)]) == 0
    assert "| mean_response |" in (storage / "compare.md").read_text()
