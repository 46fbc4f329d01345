"""How every command line reports bad input: one line on stderr, ``error: ...``, exit code 2, before any work."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


class UsageError(ValueError):
    """Bad input found before any work: reported in one line, exit code 2."""


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit with code 2 (``SystemExit``)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


class Parser(argparse.ArgumentParser):
    """Argument parser whose errors are one line and exit 2 (argparse would print the usage too)."""

    def error(self, message):
        fail(message)


def setup_logging(verbose: bool = False) -> None:
    """Log lines of the project as plain messages on stderr; other libraries' at WARNING and above."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")


def check_writable(folder: Path, what: str) -> None:
    """Raise UsageError when ``folder`` cannot be created or written (``what`` names the flag). Writes nothing."""
    probe = Path(folder).expanduser().resolve()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK):
        raise UsageError(f"{what}: {probe} is not writable")
