"""Every file a command reads, damaged: one line on stderr, exit 2, and the study left as it was.

A property-based test (Hypothesis): for each command (``search --resume``, ``export``,
``report``, ``train``, ``compare``) and each file it reads, random bytes, a truncation or
(for JSON files) a value of the wrong type somewhere in it. The study is built here
without Ray, file by file as a search leaves it, so the tier stays quick; each damage is
applied to a fresh copy of it. Damage a study is built to survive (a kill cuts the last
line of a trial's ``result.json``; a trial's per-object sums cut short, which the re-check
does without) may also end in success; it may never end in a traceback, and nothing of the
study changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis import compare, export, report
from trainables import search, train
from trainables.core.config import PROVENANCE, PROVENANCE_DATA
from trainables.core.layout import OPTUNA_KEY, SAMPLED_KEY, optuna_url
from trainables.core.metrics import object_sums
from trainables.data.schema import write_h5
from trainables.fitting.families import complete
from trainables.study.plan.search_plan import (DataPlan, RecheckPlan, ResourcePlan, SchedulerPlan, SearchPlan,
                                               TrackingPlan, write_plan)
from trainables.study.records import trainings
from trainables.study.records.trials import NUMBERS
from trainables.study.tracking.store import experiment_id, tracking_client

NAME = "shallow_cnn"
STATE = "2026-12-07_00-00-00"
# The files each command reads (relative to the storage folder), and the damage a study survives.
READS = {
    "resume": ["shallow_cnn/search.json", "shallow_cnn/optuna.db", "mlflow.db", "shallow_cnn/trial_t0/params.json",
               "shallow_cnn/trial_t1/result.json", f"shallow_cnn/experiment_state-{STATE}.json",
               "shallow_cnn/tuner.pkl", f"shallow_cnn/searcher-state-{STATE}.pkl",
               f"shallow_cnn/search_gen_state-{STATE}.json"],
    "export": ["shallow_cnn/search.json", "shallow_cnn/optuna.db", "shallow_cnn/trial_t0/params.json",
               "shallow_cnn/trial_t1/result.json", "shallow_cnn/trial_t0/inner_sums.npz"],
    "report": ["shallow_cnn/search.json", "shallow_cnn/optuna.db", "shallow_cnn/trial_t2/params.json",
               "shallow_cnn/trial_t0/result.json", "mlflow.db", "train/shallow_cnn/metrics.json"],
    "train": ["config.json", "data.h5", "mlflow.db"],
    "compare": ["train/shallow_cnn/metrics.json", "train/other/metrics.json"],
}
SURVIVED = {("result.json", "truncate"), ("inner_sums.npz", "random bytes"), ("inner_sums.npz", "truncate"),
            ("inner_sums.npz", "wrong type")}
# The fingerprint the study claims for its data: a resume that reads every file stops at the data, saying so.
READ_THROUGH = "not-these-data"
# Damages drawn per file a command reads (Hypothesis, derandomized: the same cases on every run).
EXAMPLES = 9
CASES = [(command, file) for command, files in READS.items() for file in files]


def argv(command: str, storage: Path) -> list[str]:
    return {
        "resume": ["--resume", "--name", NAME, "--storage", str(storage)],
        "export": ["--experiment", NAME, "--storage", str(storage)],
        "report": ["--experiment", NAME, "--storage", str(storage)],
        "train": ["--config", str(storage / "config.json"), "--data", str(storage / "data.h5"), "--storage",
                  str(storage), "--out", str(storage / "train" / "new"), "--tracking-uri",
                  f"sqlite:///{storage / 'mlflow.db'}", "--max-epochs", "1"],
        "compare": ["--storage", str(storage)],
    }[command]


MAINS = {"resume": search.main, "export": export.main, "report": report.main, "train": train.main,
         "compare": compare.main}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A storage folder holding a small interrupted study (3 trials), its MLflow store and Ray's saved state, two
    final trainings, a recordings file in the schema and a config file: every file the commands read, intact."""
    storage = tmp_path_factory.mktemp("pristine") / "runs"
    folder = storage / NAME
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    objects = np.repeat([f"cat{c}_{k}".encode() for c in range(2) for k in range(3)], 4)
    arrays = {f"stimulus_{p}": rng.normal(size=(24, 3, 16, 16)).astype(np.float32) for p in ("train", "val", "test")}
    arrays.update({f"spikes_{p}": rng.normal(size=(24, 5)).astype(np.float32) for p in ("train", "val")})
    arrays.update({f"object_{p}": objects for p in ("train", "val", "test")})
    write_h5(arrays, storage / "data.h5")
    uri = f"sqlite:///{storage / 'mlflow.db'}"
    client = tracking_client(uri)
    experiment = experiment_id(client, NAME, uri)
    parent = client.create_run(experiment, tags={"kind": "search"}).info.run_id
    # Its data: the recordings file beside it, under another fingerprint than the file's: a resume that reads every
    # file of the study without finding one damaged stops there, in one line, before it takes the lock or starts Ray.
    plan = SearchPlan(name=NAME, space=NAME, scientific="width_mult", sampler="qmc", seed=0, num_samples=4,
                      scheduler=SchedulerPlan("asha", 2, 3.0, 4), recheck=RecheckPlan(2, 2),
                      resources=ResourcePlan(1.0, 0.0), data=DataPlan(str(storage / "data.h5"), 0, 16, 4),
                      profile="smoke", max_epochs=4, tracking=TrackingPlan(None, experiment, parent),
                      data_fingerprint=READ_THROUGH, image_size=16, references={"object ideal observer": 0.05})
    write_plan(plan, folder)
    study = optuna.create_study(study_name=NAME, storage=optuna_url(folder), direction="maximize")
    states, trial_data = ["COMPLETE", "COMPLETE", "RUNNING"], []
    for n, state in enumerate(states):
        trial = study.ask()
        width = trial.suggest_float("width_mult", 0.5, 2.0)
        config = complete({"backbone": "shallow_cnn", "width_mult": width, "epochs": 4})
        trial.set_user_attr("config", config)
        results = [{"epoch": e, "training_iteration": e, "trial_id": f"t{n}", "inner_ev": 0.1 * e + 0.01 * n,
                    "inner_r": 0.3, "best_inner_ev": 0.1 * e + 0.01 * n, "time_this_iter_s": 1.0,
                    "time_total_s": float(e), "timestamp": 1_700_000_000 + e, "fit_done": int(e == 3)}
                   for e in range(1, 4 if state == "COMPLETE" else 2)]
        for row in results:
            trial.report(row["best_inner_ev"], row["epoch"])
        if state == "COMPLETE":
            study.tell(trial, results[-1]["best_inner_ev"])
        params = {"width_mult": width, **config, SAMPLED_KEY: ["width_mult"], OPTUNA_KEY: trial.number}
        trial_folder = folder / f"trial_t{n}"
        trial_folder.mkdir()
        (trial_folder / "params.json").write_text(json.dumps(params))
        (trial_folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in results))
        y = rng.normal(size=(12, 5))
        np.savez(trial_folder / "inner_sums.npz", **object_sums(y, y + rng.normal(size=y.shape), objects[:12].astype(str)))
        trial_data.append([json.dumps({"trial_id": f"t{n}", "config": params, "status": "TERMINATED"}), "{}"])
    (folder / f"experiment_state-{STATE}.json").write_text(json.dumps({"trial_data": trial_data}))
    for name in ("tuner.pkl", f"searcher-state-{STATE}.pkl", f"search_gen_state-{STATE}.json"):
        (folder / name).write_bytes(pickle.dumps({"saved": name, "counter": 3}))
    # A config exported from other data: a final training that reads every file undamaged stops at the data.
    best = {**complete({"backbone": "shallow_cnn", "epochs": 1}),
            "provenance": {"experiment": NAME, "data_fingerprint": READ_THROUGH}}
    (storage / "config.json").write_text(json.dumps(best))
    for run, ev in (("shallow_cnn", 0.12), ("other", -0.05)):
        (storage / "train" / run).mkdir(parents=True)
        (storage / "train" / run / "metrics.json").write_text(json.dumps({
            "ev": ev, "r_mean": 0.3, "r_median": 0.31, "seed": 0, "data_fingerprint": "synthetic-0",
            "references": {"object ideal observer": 0.05}, "provenance": {"experiment": NAME, "value": 0.3}}))
    return storage


def snapshot(storage: Path) -> dict[str, str]:
    """Every file under ``storage`` -> a hash of its bytes."""
    return {str(p.relative_to(storage)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(storage.rglob("*")) if p.is_file()}


# Where a wrong type counts as damage: in the values a command reads (None: anywhere). metrics.json and a config's
# provenance are free-form beyond the keys their readers use.
READ_KEYS = {
    "metrics.json": {"": set(trainings.SCORES) | set(trainings.OPTIONAL), "provenance": {"experiment", "value", "trial_id"}},
    "config.json": {"provenance": set(PROVENANCE), "data": set(PROVENANCE_DATA)},
    "result.json": {"": set(NUMBERS) | {"trial_id", "node_id"}},
}
# JSON's kinds of value: a number is one kind (an int where a float goes is no damage); null is left out (it is the
# value of every optional key).
KINDS = {str: "text", bool: True, list: [1], dict: {"k": 1}, float: 7.5}


def kind(value) -> type:
    return float if isinstance(value, (int, float)) and not isinstance(value, bool) else type(value)


def wrong_type(data, name: str, raw: bytes) -> bytes:
    """The JSON document (for ``result.json``: one of its lines) with one value it is read for replaced by a value
    of another kind."""
    lines = raw.decode().splitlines(keepends=True) if name == "result.json" else [raw.decode()]
    at = data.draw(st.integers(0, len(lines) - 1))
    doc = json.loads(lines[at])
    read = READ_KEYS.get(name, {})
    path, node, parent_key = [], doc, ""
    while isinstance(node, (dict, list)) and node:
        keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
        if isinstance(node, dict) and parent_key in read:
            keys = [k for k in keys if k in read[parent_key]]
        if not keys:
            break
        key = data.draw(st.sampled_from(keys))
        path.append(key)
        node, parent_key = node[key], key if isinstance(key, str) else parent_key
        if not isinstance(node, (dict, list)) or not data.draw(st.booleans()):
            break
    value = data.draw(st.sampled_from([v for k, v in KINDS.items() if k is not kind(node)]))
    if not path:
        doc = value
    else:
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = value
    lines[at] = json.dumps(doc) + ("\n" if lines[at].endswith("\n") else "")
    return "".join(lines).encode()


@pytest.mark.parametrize("command, file", CASES)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(damage=st.sampled_from(["random bytes", "truncate", "wrong type"]), data=st.data())
def test_a_damaged_file_gets_one_line_exit_2_and_changes_nothing(pristine, tmp_path_factory, command, file, damage,
                                                                 data):
    storage = tmp_path_factory.mktemp("damaged") / "runs"
    shutil.copytree(pristine, storage)
    path = storage / file
    raw = path.read_bytes()
    if damage == "random bytes":  # with something in them: an empty or blank file is a state some files have
        path.write_bytes(data.draw(st.binary(min_size=1, max_size=2048).filter(lambda b: b.strip())))
    elif damage == "truncate":
        path.write_bytes(raw[: data.draw(st.integers(0, max(len(raw) - 1, 0)))])
    else:
        if not path.name.endswith(".json") or path.name.startswith("search_gen_state"):  # JSON files only
            damage = "random bytes"
            path.write_bytes(data.draw(st.binary(min_size=1, max_size=64)))
        else:
            path.write_bytes(wrong_type(data, path.name, raw))
    before = snapshot(storage)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = MAINS[command](argv(command, storage))
        except SystemExit as exit_:
            code = exit_.code
    lines = err.getvalue().strip().splitlines()
    survived = (path.name, damage) in SURVIVED
    if command in ("resume", "train") and lines and READ_THROUGH in lines[0]:  # it read every file: none damaged
        assert survived, (command, file, damage, lines)
    elif code != 0 or not survived:
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (command, file, damage, code, lines)
        assert path.name in lines[0] or path.parent.name in lines[0], (command, file, damage, lines)
        assert snapshot(storage) == before, (command, file, damage)


def test_the_pristine_study_reads_back(pristine, tmp_path):
    """The study built here is one the commands read (without this, every damage would be refused for nothing)."""
    storage = tmp_path / "runs"
    shutil.copytree(pristine, storage)
    assert export.main(argv("export", storage)) == 0
    assert json.loads((storage / NAME / "best_config.json").read_text())["provenance"]["trial_id"] in ("t0", "t1")
    assert compare.main(argv("compare", storage)) == 0
    assert report.main(argv("report", storage)) == 0 and (storage / NAME / "report" / "index.html").is_file()
    # A resume of this study would start Ray; its files are read first (search.resumed_study), each checked above.
    finished = replace(SearchPlan.from_json((storage / NAME / "search.json").read_text()), finished=True)
    write_plan(finished, storage / NAME)
    with pytest.raises(SystemExit):
        search.main(argv("resume", storage))
