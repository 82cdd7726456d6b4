"""Where runs are recorded: the tracking URI and the experiment.

Default: an embedded SQLite store ``sqlite:///<abs store_dir>/mlflow.db`` with
artifacts in ``<abs store_dir>/artifacts``. The path is made absolute once,
from the directory the command was started in, so every job of a sweep (and
``mlflow ui --backend-store-uri ...``) sees the same store. ``MLFLOW_TRACKING_URI``
or ``tracking.tracking_uri`` (e.g. a server) wins over it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

# The experiment tag the MLflow 3 UI reads to pick the experiment's landing
# page: without it the UI opens on the GenAI overview (traces, latency).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def default_store_dir(store_dir: str | os.PathLike = "mlruns") -> Path:
    return Path(store_dir).expanduser().resolve()


def resolve_tracking_uri(tracking: dict[str, Any], use_env: bool = True) -> str:
    uri = tracking.get("tracking_uri") or (os.environ.get("MLFLOW_TRACKING_URI") if use_env else None)
    if uri:
        return str(uri)
    store = default_store_dir(tracking.get("store_dir") or "mlruns")
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def artifact_location(tracking: dict[str, Any]) -> str | None:
    """Local artifact folder for the embedded store; the server decides otherwise."""
    if tracking.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI", "").startswith("http"):
        return None
    uri = resolve_tracking_uri(tracking)
    if not uri.startswith("sqlite:///"):
        return None
    store = Path(uri[len("sqlite:///") :]).parent
    return (store / "artifacts").as_uri()


def ensure_experiment(tracking: dict[str, Any]) -> tuple[str, str]:
    """Point MLflow at the store and return ``(tracking_uri, experiment_id)``,
    creating the store and the experiment if needed."""
    uri = resolve_tracking_uri(tracking)
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI, which would
    # then win over tracking.store_dir for every later run in this process
    # (a second experiment, a test); keep the environment as the user set it.
    user_uri = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if user_uri is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = user_uri
    client = MlflowClient(tracking_uri=uri)
    name = tracking.get("experiment_name") or "seqlab"
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            # An experiment made before seqlab set the kind (a kind the user
            # chose is kept).
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return uri, experiment.experiment_id
    try:
        return uri, client.create_experiment(
            name, artifact_location=artifact_location(tracking), tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )
    except mlflow.exceptions.MlflowException:
        # Another process created it between our lookup and create.
        return uri, client.get_experiment_by_name(name).experiment_id
