"""Trial checkpoints: when to save, and what an ended search keeps.

At report scale a resumable checkpoint of ResNet-34 with the 7000-7000 head (weights,
Adam state, best weights) is about 1.2 GB while an epoch takes about a second of
GPU time, so saving every epoch would cost more than training, and 64 finished
trials would leave about 80 GB behind. The policy here: save by wall-clock
interval, never spend more than a tenth of the time saving, remove the
checkpoints of every ended trial, and keep the best completed trial's weights
once (``<search>/best_model.pt``). Knows nothing of Ray.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from trainables.core.layout import BEST_WEIGHTS_FILE, CHECKPOINTS, INNER_SUMS_FILE

MAX_CHECKPOINT_SHARE = 0.1


class CheckpointPolicy:
    """When a trial saves: ``interval_s`` after its last save, and at most ``max_share`` of its time spent saving.

    Parameters
    ----------
    interval_s : float
        Seconds of training between two resumable checkpoints (0: as often as the share allows).
    max_share : float
        Saving may take at most this share of the time: after a save that took ``c``
        seconds, the next one waits at least ``c / max_share`` seconds.
    """

    def __init__(self, interval_s: float, max_share: float = MAX_CHECKPOINT_SHARE):
        self.interval_s, self.max_share = interval_s, max_share
        self.last = time.monotonic()
        self.last_cost = 0.0
        self.saves = 0
        self.seconds = 0.0

    def due(self) -> bool:
        return time.monotonic() - self.last >= max(self.interval_s, self.last_cost / self.max_share)

    def saved(self, seconds: float) -> None:
        self.last, self.last_cost = time.monotonic(), seconds
        self.saves += 1
        self.seconds += seconds


def checkpoint_folders(trial_folder: Path) -> list[Path]:
    """A trial's checkpoint folders (Ray's ``checkpoint_NNNNNN``), oldest first."""
    return sorted(Path(trial_folder).glob(CHECKPOINTS))


def remove_checkpoints(trial_folder: Path, keep_last: bool = False) -> int:
    """Delete a trial's checkpoints (all, or all but the newest); returns the bytes freed.

    What an ended trial leaves for its study rides in its last checkpoint (Ray copies checkpoints to the storage
    folder, whatever node the trial ran on): its inner-split sums are first moved into the trial folder.
    """
    folders = checkpoint_folders(trial_folder)
    for folder in reversed(folders):
        if (folder / INNER_SUMS_FILE).is_file():
            shutil.copy2(folder / INNER_SUMS_FILE, Path(trial_folder) / INNER_SUMS_FILE)
            break
    if keep_last:
        folders = folders[:-1]
    freed = 0
    for folder in folders:
        freed += sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        shutil.rmtree(folder, ignore_errors=True)
    return freed


def keep_best_weights(trials, best_trial_id: str | None, dest: Path) -> Path | None:
    """Move the best trial's weights to ``dest`` and delete every ended trial's checkpoints.

    Parameters
    ----------
    trials : list of trainables.study.records.trials.TrialRecord
        The search's trials; unfinished ones (status ``running``) keep their checkpoints for ``--resume``.
    best_trial_id : str or None
        The exported trial.
    dest : Path
        Where the best weights go (a state dict of the model, as ``trainables.train`` saves it).

    Returns
    -------
    Path or None
        ``dest`` when the best trial's weights were found.
    """
    kept = None
    for trial in trials:
        if trial.status == "running" or trial.folder is None:
            continue
        if trial.trial_id == best_trial_id:
            found = [f / BEST_WEIGHTS_FILE for f in checkpoint_folders(trial.folder) if (f / BEST_WEIGHTS_FILE).is_file()]
            if found:
                shutil.move(str(found[-1]), dest)
                kept = Path(dest)
        remove_checkpoints(trial.folder)
    return kept
