"""Searches that each need a case of their own: real Ray (local), real Optuna, real MLflow on SQLite, tiny data.

A failing trial under Hyperband, the smoke profile's weights fallback, a readout study's bootstrap re-check. The
assertions on one ordinary study (ASHA, then the racing re-check) are in test_shared_study.py.
"""

import collections
import json
import math
import re
from pathlib import Path

import pytest
from searchutil import TINY, assert_one_truth, mlflow_runs, optuna_states, read_trials, run_search

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_failing_trials_are_counted_and_the_study_goes_on_under_hyperband(tmp_path):
    storage = tmp_path / "runs"
    done = run_search("--space", "flaky", "--storage", str(storage), "--num-samples", "3", "--max-epochs", "3",
                      "--grace-period", "1", "--scheduler", "hyperband", *TINY,
                      script=str(ROOT / "tests" / "flaky_space.py"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "scheduler hyperband" in done.stderr
    trials = read_trials(storage, "flaky")
    statuses = collections.Counter(t["status"] for t in trials)
    assert len(trials) == 3 and statuses["failed"] >= 1 and statuses["completed"] >= 1
    assert f"{statuses['failed']} failed" in done.stdout
    assert "FAIL" in optuna_states(storage, "flaky").values()
    _, _, children = mlflow_runs(storage, "flaky")
    failed = [r for r in children if r.data.tags["status"] == "failed"]
    assert len(failed) == statuses["failed"] and all(r.info.status == "FAILED" for r in failed)
    best = json.loads((storage / "flaky" / "best_config.json").read_text())
    assert best["optimizer"] == "adam"


def test_smoke_fallback_is_per_backbone_and_recorded_the_same_everywhere(tmp_path, monkeypatch):
    """An empty torch cache: EfficientNet-Lite0 still runs pretrained (its weights ship with its package) and
    its weights are sampled; ResNet-34 (the second point) falls back to random, and nothing anywhere says otherwise."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    storage = tmp_path / "runs"
    done = run_search("--space", "backbone_screen", "--storage", str(storage), "--num-samples", "3",
                      "--max-epochs", "1", "--resolution", "32", "--images-per-object", "3", "--profile", "smoke")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "those backbones run with random weights; ImageNet weights used for efficientnet_lite0" in done.stderr
    assert "resnet34" in done.stderr.split("ImageNet weights not in the torch cache for")[1].split(":")[0]
    ran = {c["backbone"]: c for c in assert_one_truth(storage, "backbone_screen")}
    assert ran["efficientnet_lite0"]["weights"] == "imagenet" and "weights" in ran["efficientnet_lite0"]["_sampled"]
    assert ran["resnet34"]["weights"] == "random" and "weights" not in ran["resnet34"]["_sampled"]
    assert all(c["epochs"] == 1 for c in ran.values())
    # Ended trials leave no checkpoint behind; the best trial's weights are kept once.
    assert not list((storage / "backbone_screen").glob("trial_*/checkpoint_*"))
    assert (storage / "backbone_screen" / "best_model.pt").is_file()


def test_the_full_profile_starts_with_every_checkpoint_cached_and_records_one_truth(tmp_path, monkeypatch,
                                                                                     checkpoint_mirror):
    """Every torchvision checkpoint in the torch cache (the mirror's randomly initialised state dicts under the real
    file names): the full profile starts, no backbone falls back to random weights, every backbone that has ImageNet
    weights samples them, and what ran is what Optuna, MLflow and the export say."""
    from trainables.models.weights import IMAGENET_WEIGHTS, TorchvisionWeights

    checkpoint_mirror.add(*(name for name, source in IMAGENET_WEIGHTS.items() if isinstance(source, TorchvisionWeights)))
    home = tmp_path / "torch"
    (home / "hub").mkdir(parents=True)
    (home / "hub" / "checkpoints").symlink_to(checkpoint_mirror.folder)
    monkeypatch.setenv("TORCH_HOME", str(home))
    storage = tmp_path / "runs"
    done = run_search("--space", "backbone_screen", "--profile", "full", "--storage", str(storage),
                      "--num-samples", "3", "--max-epochs", "1", "--resolution", "32", "--images-per-object", "3")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3 completed" in done.stdout and "random weights" not in done.stderr
    ran = assert_one_truth(storage, "backbone_screen")
    for config in ran:
        assert config["backbone"] != "shallow_cnn" or config["weights"] == "random"
        assert ("weights" in config["_sampled"]) == (config["backbone"] != "shallow_cnn")
    lite0 = [c for c in ran if c["backbone"] == "efficientnet_lite0"]  # the first point: pretrained, fine-tuned
    assert lite0 and lite0[0]["weights"] == "imagenet"


def test_a_readout_study_compares_its_leaders_by_the_bootstrap(tmp_path):
    """Ridge fits do not depend on a seed: the re-check runs no seeds and says tie or ahead from the images alone."""
    storage = tmp_path / "runs"
    done = run_search("--space", "ridge_pixels", "--storage", str(storage), "--num-samples", "4", "--recheck-top",
                      "3", *TINY)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "compared by a paired bootstrap over the inner split's objects" in done.stdout
    trials = read_trials(storage, "ridge_pixels")
    assert len(trials) == 4 and not any(t["recheck_of"] for t in trials)
    table = json.loads((storage / "ridge_pixels" / "best_config.json").read_text())["provenance"]["recheck"]["table"]
    assert len(table) == 3 and all(r["deterministic"] and r["n"] == 0 and r["image_se"] > 0 for r in table)
    assert table[0]["mean"] == table[0]["search_value"] and not math.isnan(table[0]["se"])


def test_the_re_check_s_first_round_runs_in_the_slots_the_search_leaves_free(tmp_path):
    """Two trials at once, one short and one long: once the short one completed, its slot re-checks its config
    (seed 1) while the long one still runs, in the search's own Tuner, and the long config's seed 1 follows there once
    the long trial completed. Both runs are in the same Optuna study and under the same MLflow parent run."""
    storage = tmp_path / "runs"
    done = run_search("--space", "free_slot", "--storage", str(storage), "--num-samples", "2", "--scheduler", "fifo",
                      "--max-concurrent", "2", "--recheck-top", "2", "--recheck-seeds", "2", *TINY,
                      script=str(ROOT / "tests" / "free_slot_space.py"))
    assert done.returncode == 0, done.stderr[-3000:]
    folder = storage / "free_slot"
    trials = read_trials(storage, "free_slot")
    by_long = {t["long"]: t for t in trials if not t["recheck_of"]}
    short, long = by_long["False"], by_long["True"]
    assert (f"re-check round 1 in a free slot of the search: trial {short['trial_id']}'s config, seed 1 (1 search "
            "trial still running)") in done.stderr
    assert f"re-check round 1 in a free slot of the search: trial {long['trial_id']}'s config, seed 1\n" in done.stderr
    rechecks = {(t["recheck_of"], t["seed"]): t for t in trials if t["recheck_of"]}
    first = [rechecks[(short["trial_id"], "1")], rechecks[(long["trial_id"], "1")]]
    assert len(rechecks) in (2, 4) and all(t["status"] == "completed" for t in rechecks.values())
    # Round 1 ran in the search's Tuner (its trial folders are the study's), the short config's run beside the long
    # trial; a round 2 (a tie) runs under recheck/.
    assert all((folder / f"trial_{t['trial_id']}").is_dir() for t in first)

    def stamps(trial_id):
        rows = (folder / f"trial_{trial_id}" / "result.json").read_text().splitlines()
        return [json.loads(r)["timestamp"] for r in rows if r.strip()]

    assert stamps(first[0]["trial_id"])[0] <= stamps(long["trial_id"])[-1]
    assert all((folder / "recheck" / f"trial_{t['trial_id']}").is_dir() for (_, seed), t in rechecks.items()
               if seed == "2")
    assert not re.search(r"re-check round 1: \d+ configs?,", done.stderr)  # the runner ran no round 1
    import optuna

    study = optuna.load_study(study_name="free_slot", storage=f"sqlite:///{folder / 'optuna.db'}")
    assert [t.state.name for t in study.trials].count("COMPLETE") == 2 + len(rechecks)
    repeats = sorted((t.user_attrs["recheck_of"], t.user_attrs["seed"]) for t in study.trials
                     if "recheck_of" in t.user_attrs)
    number = {t["trial_id"]: json.loads((folder / f"trial_{t['trial_id']}" / "params.json").read_text())["_optuna_trial"]
              for t in (short, long)}
    assert repeats == sorted((number[of], int(seed)) for of, seed in rechecks)
    _, parents, children = mlflow_runs(storage, "free_slot")
    assert sorted((r.data.tags["recheck_of"], r.data.params["seed"]) for r in children if "recheck_of" in r.data.tags) \
        == sorted(rechecks)
    assert f"{len(rechecks)} runs of at most 4" in done.stdout
