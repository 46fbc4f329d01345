"""The re-check's table in words: one line per raced config, and the verdict on #1 and #2."""

from __future__ import annotations

import math

from trainables.core.layout import sampled_params
from trainables.study.recheck.stats import TIE_SES, RecheckRow, is_tie


def sampled_text(config: dict) -> str:
    """``lr=0.0001, vgg_blocks=5``: the values the searcher sampled for a trial."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sampled_params(config).items())


def verdict(rows: list[RecheckRow]) -> str:
    """``tie: ...`` or ``#1 ahead: ...``: the gap between #1 and #2 against two standard errors of it."""
    gap, se = rows[0].mean - rows[1].mean, rows[1].diff_se
    return (f"{'tie' if is_tie(rows[0], rows[1]) else '#1 ahead'}: #1 - #2 = {gap:.4f}, two standard errors of the "
            f"difference = {TIE_SES * se:.4f}")


def format_table(rows: list[RecheckRow]) -> list[str]:
    """Lines of the re-check table for a terminal: rank, trial, search score, mean +- SE (seeds, images), runs,
    what was sampled, and the verdict on #1 and #2."""
    lines = [f"{'rank':<5}{'trial':<12}{'search EV':>10}  {'mean +- SE':<18}{'SE seeds / images':<19}{'runs':>5}  "
             "sampled"]
    for i, row in enumerate(rows, 1):
        notes = [] if row.trial.status == "completed" else [f"stopped at epoch {row.trial.epochs} in the search"]
        if row.out:
            notes.append("left the race")
        runs = "-" if row.deterministic else str(row.n)
        lines.append(f"{i:<5}{row.trial.trial_id:<12}{row.search_value:>10.4f}  {row.mean:.4f} +- {row.se:.4f}"
                     f"{'':<2}{_se(row.seed_se)} / {_se(row.image_se)}{'':<2}{runs:>5}  {sampled_text(row.trial.config)}"
                     + (f" ({'; '.join(notes)})" if notes else ""))
    if len(rows) >= 2:
        lines.append(verdict(rows))
    return lines


def _se(x: float) -> str:
    return "  n/a " if math.isnan(x) else f"{x:.4f}"


def runs_spent(rows: list[RecheckRow]) -> int:
    """Re-check runs the race spent."""
    return sum(r.n for r in rows)
