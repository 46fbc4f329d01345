"""Whether a SQLite file can be read as the database it should be, before a library opens it.

Optuna's and MLflow's stores create their tables in any file they open, an empty or
foreign one included; reading a damaged file first (:func:`check_sqlite`) names it
in one line and creates nothing in it. The file is opened for writing all the same
(never created): a store left by a killed process may hold a journal that SQLite
must roll back before it can be read.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path


def check_sqlite(path: Path, tables: tuple[str, ...]) -> None:
    """Open ``path`` (it must exist), run SQLite's quick integrity check and look for ``tables``; nothing is written
    but what SQLite's own recovery of a killed writer's journal writes.

    Raises
    ------
    sqlite3.DatabaseError
        Not a database, damaged, or without one of ``tables``; the message says which.
    """
    with contextlib.closing(sqlite3.connect(f"file:{Path(path).resolve()}?mode=rw", uri=True)) as con:
        problems = [row[0] for row in con.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError(problems[0])
        found = {row[0] for row in con.execute("select name from sqlite_master where type = 'table'")}
        missing = [t for t in tables if t not in found]
        if missing:
            raise sqlite3.DatabaseError(f"no table '{missing[0]}'")
        for table in tables:
            con.execute(f"select count(*) from {table}").fetchone()  # every page of it read
