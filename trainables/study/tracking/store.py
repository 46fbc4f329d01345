"""MLflow tracking from the driver: a search's parent run, and one run per final training.

A search has one parent run (params: space, sampler, scheduler, profile, seed,
data fingerprint; tags: git commit and library versions; artifacts: best config
and trials table); its trials are nested under it by
:class:`trainables.study.tracking.callbacks.MLflowTrials`.

Final training (``trainables.train``) logs the config as params, the
official-validation scores as metrics, the output folder's figures and files as
artifacts, and a network with MLflow's PyTorch flavour so that
``mlflow.pytorch.load_model`` gives it back; a config exported by a search is
tagged with the search and trial it came from.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path

import mlflow
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.tracking import MlflowClient

from trainables.core.layout import ARTIFACTS_DIR, EMPTY_MLFLOW_DB, cache_dir
from trainables.study.tracking.sqlite_store import sqlite_path
from trainables.study.tracking.ui import view_key

log = logging.getLogger(__name__)


def mlflow_value(value) -> str:
    """A config value as an MLflow param: strings as they are, anything else as JSON (``null``, ``[7000, 7000]``)."""
    return value if isinstance(value, str) else json.dumps(value)


def tracking_client(tracking_uri: str) -> MlflowClient:
    """An MLflow client for a store that may not exist yet; a new SQLite store starts as a copy of an empty one.

    MLflow builds a new SQLite database by replaying each of its schema migrations, seconds of CPU per study; the
    empty database it builds is kept in the cache folder (one per MLflow version) and copied from then on.
    """
    path = sqlite_path(tracking_uri)
    if path is not None and "?" not in tracking_uri and not path.exists():
        empty = cache_dir() / EMPTY_MLFLOW_DB.format(version=mlflow.__version__)
        if not empty.is_file():
            empty.parent.mkdir(parents=True, exist_ok=True)
            building = empty.with_name(f".{empty.name}.{os.getpid()}")
            building.unlink(missing_ok=True)
            MlflowClient(f"sqlite:///{building.resolve()}").search_experiments()  # MLflow creates its tables
            os.replace(building, empty)  # whole or not at all, when two searches start at once
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(empty, path)
    return MlflowClient(tracking_uri)


# MLflow 3 opens an experiment in its GenAI view (traces, sessions) unless it says it holds model training.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def experiment_id(client, name: str, tracking_uri: str) -> str:
    """The experiment called ``name``, created (with a local artifact folder for SQLite stores) when missing,
    and tagged as model training so that the MLflow UI opens on its runs table."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.tags.get("mlflow.experimentKind") != EXPERIMENT_KIND["mlflow.experimentKind"]:
            for key, value in EXPERIMENT_KIND.items():
                client.set_experiment_tag(experiment.experiment_id, key, value)
        return experiment.experiment_id
    location, db = None, sqlite_path(tracking_uri)
    if db is not None:
        # Without an explicit location, artifacts land relative to the current directory.
        location = (db.resolve().parent / ARTIFACTS_DIR).as_uri()
    return client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_KIND)


def relocate_artifacts(tracking_uri: str, experiment: str) -> str | None:
    """A study moved with its ``mlflow.db``: point the experiment's artifact store, and its runs', at the
    ``mlartifacts`` beside the database, where it now lies; returns the old location when it moved.

    MLflow keeps absolute artifact locations in the database and offers no call to change them, so the two
    columns are rewritten in the SQLite file itself (only a ``sqlite:///`` store beside the study is touched).
    """
    db = sqlite_path(tracking_uri)
    here = (db.resolve().parent / ARTIFACTS_DIR).as_uri()
    with sqlite3.connect(db) as con:
        row = con.execute("select artifact_location from experiments where experiment_id = ?", (experiment,)).fetchone()
        if row is None or row[0] == here:
            return None
        old = row[0]
        con.execute("update experiments set artifact_location = ? where experiment_id = ?", (here, experiment))
        con.execute("update runs set artifact_uri = ? || substr(artifact_uri, ?) where experiment_id = ? and "
                    "artifact_uri like ? || '%'", (here, len(old) + 1, experiment, old))
    return old


def data_input(name: str, fingerprint: str, source: str, context: str = "training") -> DatasetInput:
    """The data set a run saw, as MLflow's Runs table shows it (its Dataset column): ``name``, and the data's
    fingerprint as its digest; ``source``: ``synthetic`` or the recordings file."""
    kind = "synthetic" if source == "synthetic" else "local"
    name = Path(name).stem if kind == "synthetic" else name  # the cache file of a synthetic data set: its spec
    dataset = Dataset(name=name, digest=fingerprint, source_type=kind,
                      source=json.dumps({"uri": source if kind == "local" else f"synthetic:{name}"}))
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])


# MLflow's UI keeps an experiment's saved views of its runs table as experiment tags of this prefix.
VIEW_TAG = "mlflow.sharedViewState."


def save_runs_view(client: MlflowClient, experiment: str, metric: str, params: tuple = ()) -> str | None:
    """Save a view of the experiment's runs table: best ``metric`` first, with that metric, ``params`` and the data
    set as its first columns; return its key for :func:`~trainables.study.tracking.ui.runs_url` (None where the
    installed MLflow keeps no views: the URL's sort parameters do without the columns)."""
    key = view_key(metric)
    if key is None:
        return None
    columns = [f"metrics.`{metric}`", *(f"params.`{p}`" for p in params), "attributes.`Dataset`"]
    state = {"searchFilter": "", "orderByKey": columns[0], "orderByAsc": False, "startTime": "ALL",
             "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
             "selectedColumns": columns, "columnOrder": columns, "columnWidths": {"attributes.`Dataset`": 180},
             "runsHiddenMode": "FIRST_10_RUNS", "viewMaximized": False, "runListHidden": False,
             "isAccordionReordered": False, "groupBy": None, "groupsExpanded": {}, "useGroupedValuesInCharts": True,
             "hideEmptyCharts": True,
             "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""}}
    now = int(time.time() * 1000)
    client.set_experiment_tag(experiment, f"{VIEW_TAG}{key}", json.dumps(
        {"name": f"best {metric} first", "createdAt": now, "updatedAt": now, "state": json.dumps(state)}))
    return key
