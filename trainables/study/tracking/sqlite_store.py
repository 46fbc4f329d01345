"""An MLflow tracking store in a SQLite file: where its file is, and whether it can be read, without importing MLflow.

The one place a command checks a ``sqlite:///`` tracking store before any work: a
damaged ``mlflow.db`` (not a database, cut short, or not MLflow's) is named in one
line instead of failing inside MLflow after a study started.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from trainables.core.sqlite import check_sqlite

# Tables every MLflow store has; a database without them is not one.
MLFLOW_TABLES = ("experiments", "runs", "alembic_version")


class StoreDamaged(RuntimeError):
    """A tracking store that cannot be read; the message names its file and what to do."""


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` tracking URI (relative to the current folder unless absolute), else
    None."""
    return Path(tracking_uri.removeprefix("sqlite:///").split("?")[0]) if tracking_uri.startswith("sqlite:///") else None


def check_store(tracking_uri: str) -> None:
    """Read a SQLite tracking store that exists (:func:`~trainables.core.sqlite.check_sqlite`); StoreDamaged naming the
    file when it is not a readable MLflow store. Other URIs and a store not made yet pass."""
    path = sqlite_path(tracking_uri)
    if path is None or not path.exists():
        return
    try:
        check_sqlite(path, MLFLOW_TABLES)
    except sqlite3.Error as err:
        raise StoreDamaged(f"MLflow tracking store {path} cannot be read ({err}); restore it from a copy, or give "
                           "another --tracking-uri") from None
