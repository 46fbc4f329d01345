"""MLflow's SQLite stores as the search and the final training open them."""

import os

import mlflow

from trainables.core.layout import EMPTY_MLFLOW_DB
from trainables.study.tracking.store import tracking_client


def test_a_new_sqlite_store_is_a_copy_of_the_empty_one_in_the_cache(tmp_path, private_cache):
    """MLflow builds a new database by replaying its migrations (seconds): it does so once, into the cache."""
    first, second = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    client = tracking_client(f"sqlite:///{first}")
    empty = private_cache / EMPTY_MLFLOW_DB.format(version=mlflow.__version__)
    assert empty.is_file() and first.read_bytes() == empty.read_bytes()
    client.create_experiment("one")
    other = tracking_client(f"sqlite:///{second}")
    assert second.read_bytes() == empty.read_bytes()
    assert [e.name for e in other.search_experiments()] == ["Default"]
    assert {e.name for e in tracking_client(f"sqlite:///{first}").search_experiments()} == {"Default", "one"}
    # No half-built copy of this process's left (the cache is shared with pytest-xdist's other worker).
    assert not (private_cache / f".{empty.name}.{os.getpid()}").exists()
