"""Final trainings read from disk: the one place a ``metrics.json`` of ``trainables.train`` is read.

A final training's folder (``<storage>/train/<run>/``) holds its ``metrics.json``
(:func:`read_training`); ``analysis.compare``, the report and the ladder read it
here, so that a damaged one is named in one line instead of failing in a figure.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainables.core.layout import METRICS_FILE, TRAIN_DIR
from trainables.study.records.trials import StudyDamaged

_NUMBER = (int, float)
# The keys of a metrics.json that its readers use, and their types (None is allowed for each but the scores).
SCORES = {"ev": _NUMBER, "r_mean": _NUMBER, "r_median": _NUMBER}
OPTIONAL = {"r2": _NUMBER, "ev_std": _NUMBER, "r_mean_std": _NUMBER, "inner_ev": _NUMBER, "inner_ev_std": _NUMBER,
            "noise_ceiling_ev": _NUMBER, "ev_normalized": _NUMBER, "seed": int, "seeds": list, "references": dict,
            "data_fingerprint": str, "data": str, "provenance": dict, "ev_per_site": list, "r_per_site": list,
            "noise_ceiling_ev_per_site": list}


class TrainingDamaged(StudyDamaged):
    """A final training's ``metrics.json`` that cannot be read; the message names it and what to do."""


def _is(value, kind) -> bool:
    return isinstance(value, kind) and not isinstance(value, bool)


def read_training(path: Path) -> dict:
    """The metrics of one final training (its ``metrics.json``), their types checked.

    Raises
    ------
    TrainingDamaged
        The file cannot be read, is not JSON, or a score has the wrong type; the message names it.
    """
    path = Path(path)
    try:
        metrics = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(metrics, dict):
            raise TypeError(f"a JSON {type(metrics).__name__}, not an object")
        for key, kind in SCORES.items():
            if not _is(metrics.get(key), kind):
                raise TypeError(f"'{key}': {metrics.get(key)!r}")
        for key, kind in OPTIONAL.items():
            if metrics.get(key) is not None and not _is(metrics[key], kind):
                raise TypeError(f"'{key}': {metrics[key]!r}")
        if not all(isinstance(k, str) and _is(v, _NUMBER) for k, v in (metrics.get("references") or {}).items()):
            raise TypeError(f"'references': {metrics['references']!r}")
        for key in ("ev_per_site", "r_per_site", "noise_ceiling_ev_per_site"):
            if not all(_is(v, _NUMBER) or v is None for v in metrics.get(key) or ()):
                raise TypeError(f"'{key}' holds a non-number")
        if not all(_is(s, int) for s in metrics.get("seeds") or ()):
            raise TypeError(f"'seeds': {metrics['seeds']!r}")
        provenance = metrics.get("provenance") or {}
        for key, kind in (("experiment", str), ("value", _NUMBER), ("trial_id", str)):
            if provenance.get(key) is not None and not _is(provenance[key], kind):
                raise TypeError(f"provenance '{key}': {provenance[key]!r}")
        return metrics
    except (OSError, ValueError, TypeError, RecursionError) as err:
        raise TrainingDamaged(f"{path} cannot be read ({type(err).__name__}: {str(err)[:120]}); train that model again, "
                              "or move its folder out of the way") from None


def training_files(storage: Path) -> list[Path]:
    """The ``metrics.json`` of every final training under ``<storage>/train``, by folder name."""
    return sorted((Path(storage) / TRAIN_DIR).glob(f"*/{METRICS_FILE}"))
