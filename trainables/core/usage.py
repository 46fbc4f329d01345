"""How every command line talks: bad input in one line on stderr (``error: ...``, exit code 2, before any work), the
project's log lines as plain messages, and none of the libraries' lines that a user can do nothing about."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
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
    quiet_libraries()


class _Drop(logging.Filter):
    """Drops log records whose message contains one of ``texts``."""

    def __init__(self, *texts: str):
        super().__init__()
        self.texts = texts

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in self.texts)


_QUIET = {
    # a private Ray instance uses token authentication: nothing to do about it
    "ray._private.authentication.authentication_token_setup": _Drop("Token authentication is enabled for this Ray"),
    # Ray started from a thread (cluster.RayStart) keeps the command's own SIGTERM handler, as intended
    "ray._private.worker": _Drop("SIGTERM handler is not set"),
    # the project saves networks in MLflow's pickle format on purpose (the traced format cannot take every backbone)
    "mlflow.pytorch": _Drop("Saving pytorch model by Pickle"),
}


def quiet_libraries() -> None:
    """Silence what the libraries say that a user can do nothing about: Ray's notes that a private instance uses
    token authentication and that a thread cannot set its SIGTERM handler, MLflow's database set-up lines and its
    caution about the pickle format, Optuna's per-trial lines, an SQLAlchemy deprecation inside MLflow. Only logger
    names and warning filters: nothing is imported."""
    for name, drop in _QUIET.items():
        if drop not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(drop)
    for name in ("mlflow", "alembic", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*noload.*")


def check_writable(folder: Path, what: str) -> None:
    """Raise UsageError when ``folder`` cannot be created or written (``what`` names the flag). Writes nothing."""
    probe = Path(folder).expanduser().resolve()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"{what}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK):
        raise UsageError(f"{what}: {probe} is not writable")
