"""Sections of ``benchmarks/RESULTS.md`` that a benchmark script owns: each between its own markers, replaced on a
rerun, so that the file holds the latest run of every measurement next to the hand-written ones."""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(key: str, section: str, path: Path = RESULTS) -> Path:
    """Replace (or append) the text between ``<!-- KEY -->`` and ``<!-- /KEY -->`` in ``path``."""
    begin, end = f"<!-- {key} -->", f"<!-- /{key} -->"
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    block = f"{begin}\n{section.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + f"\n\n{block}\n"
    path.write_text(text)
    return path
