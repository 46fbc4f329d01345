"""One launcher per study: an operating-system file lock in the study folder, and who holds it.

The lock is ``filelock``'s (an ``flock`` on Linux): the kernel releases it when its
process ends, however it ends, so a lock left by a killed driver is free for the next
launcher, which says whose it was. Beside it, ``search.lock`` names the holder (PID,
host, since when) so that a second launcher can say who runs the study.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from trainables.core.layout import LOCK_FILE, LOCK_FLOCK
from trainables.core.usage import UsageError

log = logging.getLogger(__name__)


class StudyLock:
    """Held by the process that runs the study in ``folder`` (made if missing), until :meth:`release`.

    Raises
    ------
    UsageError
        Another live process holds it (the message names its PID and host).
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.info = self.folder / LOCK_FILE
        self.made = _missing_parents(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(str(self.folder / LOCK_FLOCK))
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            self.remove_made()
            raise UsageError(_held(self.folder, self.holder())) from None
        stale = self.holder()
        if stale and stale.get("pid") != os.getpid():
            log.info("took over the study from PID %s on host %s, which ended without releasing it",
                     stale.get("pid"), stale.get("host"))
        self.info.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                         "since": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")

    @staticmethod
    def check_free(folder: Path) -> None:
        """UsageError naming the holder when a live process runs the study in ``folder``; writes nothing."""
        flock = Path(folder) / LOCK_FLOCK
        if not flock.is_file():
            return
        lock = FileLock(str(flock))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise UsageError(_held(Path(folder), _read(Path(folder) / LOCK_FILE))) from None
        lock.release()

    def holder(self) -> dict:
        return _read(self.info)

    def release(self, remove_folder: bool = False) -> None:
        """Let the study go; ``remove_folder``: also remove the folders made for it (nothing was written there)."""
        self.info.unlink(missing_ok=True)
        self.lock.release()
        Path(self.lock.lock_file).unlink(missing_ok=True)
        if remove_folder:
            self.remove_made()

    def remove_made(self) -> None:
        """Remove the folders this lock made, deepest first, where they are empty."""
        for folder in self.made:
            try:
                folder.rmdir()
            except OSError:
                break


def _missing_parents(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    folder = Path(folder).absolute()
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


def _read(info: Path) -> dict:
    try:
        return json.loads(info.read_text())
    except (OSError, ValueError):
        return {}


def _held(folder: Path, holder: dict) -> str:
    who = (f"PID {holder.get('pid')} on host {holder.get('host')} (since {holder.get('since')})" if holder
           else "another process")
    return f"study '{folder.name}' in {folder.parent} is being run by {who}; wait for it to end, or stop it"
