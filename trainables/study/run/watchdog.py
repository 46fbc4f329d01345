"""Ends a private Ray instance's processes when the driver that started it dies without shutting it down.

    python -m trainables.study.run.watchdog DRIVER_PID SESSION_NAME

Started by :func:`trainables.study.run.cluster.connect` in a session of its own (so that
a signal to the driver's process group spares it). Every half second it notes the
driver's descendants (Ray's node processes, agents and workers, which rename
themselves ``ray::...``); once the driver is gone (a SIGKILL leaves Ray's agents and
workers behind, re-parented to PID 1), it kills those still alive (the same process:
PID and start time) and every process whose command line names the Ray session.
Linux only (``/proc``); elsewhere it exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def processes() -> dict[int, tuple[int, str, str]]:
    """PID -> (parent PID, start time, command line) of every process visible in /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), fields[19], cmdline)
    return found


def descendants(table: dict, roots: set[int]) -> set[int]:
    """``roots`` and every process below them in ``table``."""
    found, grew = set(roots), True
    while grew:
        children = {pid for pid, (ppid, _, _) in table.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    return found


def main(argv: list[str]) -> int:
    driver, session = int(argv[0]), argv[1]
    if not Path("/proc").is_dir():
        return 0
    seen: dict[int, str] = {}  # the driver's descendants so far: PID -> start time
    while alive(driver):
        table = processes()
        seen.update({pid: table[pid][1] for pid in descendants(table, {driver}) - {driver} if pid in table})
        time.sleep(0.5)
    time.sleep(0.5)  # a driver that shut Ray down itself has left nothing; give its last steps a moment
    table = processes()
    named = {pid for pid, (_, _, cmd) in table.items() if session in cmd and pid != os.getpid()}
    left = {pid for pid, start in seen.items() if pid in table and table[pid][1] == start} | named
    for pid in descendants(table, left) - {os.getpid()}:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
