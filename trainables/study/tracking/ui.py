"""Links into MLflow's UI (no MLflow import: a command prints them after a study or before any work)."""

from __future__ import annotations

from importlib.metadata import version

# MLflow's UI keeps an experiment's saved views of its runs table (as experiment tags) from release 3.15 on.
VIEWS_SINCE = (3, 15)


def views_supported() -> bool:
    """Whether the installed MLflow's UI opens saved views of the runs table."""
    return tuple(int(x) for x in version("mlflow").split(".")[:2]) >= VIEWS_SINCE


def view_key(metric: str) -> str | None:
    """The key of an experiment's saved view "best ``metric`` first" (None where MLflow keeps no views)."""
    return f"best-{metric}".replace("_", "-") if views_supported() else None


def runs_url(tracking_uri: str, experiment: str, metric: str, view: str | None = None) -> str:
    """Where to see an experiment's runs in MLflow's UI, best ``metric`` first.

    With ``view`` (a saved view of the experiment, :func:`trainables.study.tracking.store.save_runs_view`), the page
    opens on it: sorted, with its columns. Without, MLflow 3's UI reads the runs table's order (``orderByKey``,
    ``orderByAsc``) from the URL. Both say the layout (``workflowType``: the model-training view, not the GenAI
    one). For a SQLite store, the page of ``mlflow ui`` on its default address.
    """
    query = (f"viewStateShareKey={view}" if view else f"orderByKey=metrics.%60{metric}%60&orderByAsc=false")
    page = f"#/experiments/{experiment}/runs?{query}&workflowType=machine_learning"
    return f"{tracking_uri.rstrip('/')}/{page}" if tracking_uri.startswith("http") else f"http://127.0.0.1:5000/{page}"
