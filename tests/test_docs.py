"""The docs say what is there: docs/architecture.md's tree of ``runs/`` against a real study folder (slow), and the
README's commands and limits (quick)."""

import re
from pathlib import Path

import pytest

from analysis import export, report

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
OPAQUE = ("mlartifacts/", "features/")  # laid out by MLflow and the feature cache, not by the study


def documented_tree() -> dict[str, str]:
    """docs/architecture.md's ``runs/`` tree as path pattern -> comment (placeholders and ``*`` as regexes)."""
    text = ARCHITECTURE.read_text()
    block = re.search(r"```\nruns/\n(.*?)```", text, re.S)
    assert block, "docs/architecture.md has no runs/ tree"
    entries, stack = {}, []
    for line in block.group(1).splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name, _, comment = line.strip().partition("  #")
        stack[depth - 1:] = [name.strip()]
        entries["".join(stack)] = comment.strip()
    return entries


def pattern(path: str) -> re.Pattern:
    parts = re.split(r"(<[^>]+>|\*)", path)
    return re.compile("".join("[^/]+" if p.startswith("<") else "[^/]*" if p == "*" else re.escape(p)
                              for p in parts) + "$")


@pytest.mark.slow
def test_the_documented_tree_of_runs_is_what_a_study_writes(shallow_study, capsys):
    """Every file a study, its report and its export write is in the tree, and the tree's core entries exist."""
    assert report.main(["--experiment", "shallow_cnn", "--storage", str(shallow_study.storage)]) == 0
    assert export.main(["--experiment", "shallow_cnn", "--storage", str(shallow_study.storage), "--top", "2"]) == 0
    capsys.readouterr()
    tree = documented_tree()
    patterns = [pattern(p.replace("<study>/", "shallow_cnn/", 1)) for p in tree]
    storage = shallow_study.storage
    real = [str(p.relative_to(storage)) + ("/" if p.is_dir() else "") for p in storage.rglob("*")]
    real = [p for p in real if not p.startswith(OPAQUE) or p in OPAQUE]
    undocumented = [p for p in real if not any(pat.match(p) for pat in patterns)]
    assert not undocumented, f"not in docs/architecture.md's tree: {undocumented}"
    for required in ("mlflow.db", "<study>/search.json", "<study>/optuna.db", "<study>/trial_<id>/params.json",
                     "<study>/trial_<id>/result.json", "<study>/trial_<id>/inner_sums.npz", "<study>/recheck/",
                     "<study>/best_config.json", "<study>/best_model.pt", "<study>/trials.csv",
                     "<study>/report/index.html", "<study>/top<K>.json"):
        assert required in tree, f"{required} missing from the tree"
        wanted = pattern(required.replace("<study>/", "shallow_cnn/", 1))
        assert any(wanted.match(p) for p in real), f"{required} documented but not written"


def test_the_readme_keeps_its_two_commands_and_its_size():
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[dev]" && python -m trainables.search --space vgg_depth' in readme
    assert 'pip install -e ".[dev]" && pytest -q' in readme
    assert len(readme.encode()) <= 12_000
    assert 'pytest -q -m "not slow"' in readme and "lint-imports" in readme
    assert 'pytest -q' in (ROOT / ".ci" / "run").read_text()
