"""The README's commands and limits. docs/architecture.md's tree of ``runs/`` is checked against a real study
folder in test_shared_study.py."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_keeps_its_two_commands_and_its_size():
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[dev]" && python -m trainables.search --space vgg_depth' in readme
    assert 'pip install -e ".[dev]" && pytest -q' in readme
    assert len(readme.encode()) <= 12_000
    assert 'pytest -q -m "not slow"' in readme and "lint-imports" in readme
    assert 'pytest -q' in (ROOT / ".ci" / "run").read_text()
