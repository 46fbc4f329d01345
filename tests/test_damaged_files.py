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
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from studyutil import NAME, READ_THROUGH, STATE, build_study

from analysis import compare, export, report
from trainables import search, train
from trainables.core.config import PROVENANCE, PROVENANCE_DATA
from trainables.study.plan.search_plan import SearchPlan, write_plan
from trainables.study.records import trainings
from trainables.study.records.trials import NUMBERS

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
    """The study of :func:`studyutil.build_study`, intact: each test damages a copy."""
    return build_study(tmp_path_factory.mktemp("pristine") / "runs")


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
