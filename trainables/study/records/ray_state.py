"""Ray Tune's saved state of a study, read without Ray: what a resume restores, checked before anything starts.

Ray Tune saves a study's state beside its trial folders (``Tuner.restore`` reads
them): ``experiment_state-*.json`` (JSON: every trial, its config and status) and
pickles (``tuner.pkl``, ``searcher-state-*.pkl``, ``search_gen_state-*.json``,
``basic-variant-state-*.json``). A damaged one would stop a resume inside Ray with
a traceback after the study's lock is taken; :func:`check_ray_state` reads them
first: the JSON parsed, each pickle's opcodes walked (:mod:`pickletools`: its
structure, without running it or importing what it names).
"""

from __future__ import annotations

import json
import pickletools
from pathlib import Path

from trainables.core.layout import EXPERIMENT_STATE, RAY_STATE
from trainables.study.records.trials import StudyDamaged

_HOW = "set it aside (move it out of the study folder) to resume from the study's own files, or restore it from a copy"


def _damaged(path: Path, err: BaseException) -> StudyDamaged:
    return StudyDamaged(f"{path} cannot be read ({type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}); "
                        f"{_HOW}")


def _experiment_state(path: Path) -> dict:
    """One ``experiment_state-*.json``: its trials, trial id -> config and status."""
    try:
        state = json.loads(path.read_bytes().decode("utf-8"))
        known = {}
        for entry in state["trial_data"]:
            if not isinstance(entry, list) or not entry or not all(isinstance(part, str) for part in entry):
                raise TypeError(f"a trial entry {str(entry)[:40]}")
            trial = json.loads(entry[0])
            if not isinstance(trial.get("config", {}), dict) or not isinstance(trial.get("status", ""), str):
                raise TypeError("a trial's config or status")
            known[str(trial["trial_id"])] = {"config": dict(trial.get("config") or {}), "status": trial.get("status")}
        return known
    except (OSError, ValueError, KeyError, TypeError, IndexError, RecursionError) as err:
        raise _damaged(path, err) from None


def ray_trials(folder: Path) -> dict[str, dict]:
    """Ray's view of a study's trials, from its latest saved experiment state: trial id -> config and status (empty
    before Ray first saved it); StudyDamaged naming the file when it cannot be read."""
    states = sorted(Path(folder).glob(EXPERIMENT_STATE))
    return _experiment_state(states[-1]) if states else {}


def check_ray_state(folder: Path) -> None:
    """Read every file of Ray Tune's saved state in ``folder``; StudyDamaged naming the first that cannot be read."""
    for pattern in RAY_STATE:
        for path in sorted(Path(folder).glob(pattern)):
            if path.match(EXPERIMENT_STATE):
                _experiment_state(path)
                continue
            try:
                data = path.read_bytes()
                if not data:
                    raise ValueError("empty")
                for _ in pickletools.genops(data):
                    pass
            except (OSError, ValueError, KeyError, IndexError, UnicodeDecodeError) as err:
                raise _damaged(path, err) from None
