"""Links into MLflow's UI (no MLflow import: a command prints them after a study or before any work)."""

from __future__ import annotations


def runs_url(tracking_uri: str, experiment: str, metric: str) -> str:
    """Where to see an experiment's runs in MLflow's UI, best ``metric`` first.

    MLflow 3's UI reads the runs table's order (``orderByKey``, ``orderByAsc``) and its layout (``workflowType``:
    the model-training view, not the GenAI one) from the URL. For a SQLite store, the page of ``mlflow ui`` on its
    default address.
    """
    page = (f"#/experiments/{experiment}/runs?orderByKey=metrics.%60{metric}%60&orderByAsc=false"
            "&workflowType=machine_learning")
    return f"{tracking_uri.rstrip('/')}/{page}" if tracking_uri.startswith("http") else f"http://127.0.0.1:5000/{page}"
