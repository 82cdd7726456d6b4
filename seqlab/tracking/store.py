"""Where runs are recorded: the tracking URI and the experiment.

Default: an embedded SQLite store ``sqlite:///<abs store_dir>/mlflow.db`` with
artifacts in ``<abs store_dir>/artifacts``. The path is made absolute once,
from the directory the command was started in, so every job of a sweep (and
``mlflow ui --backend-store-uri ...``) sees the same store. ``MLFLOW_TRACKING_URI``
or ``tracking.tracking_uri`` (e.g. a server) wins over it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from seqlab.errors import ConfigError, TrackingStoreError

log = logging.getLogger(__name__)

# The experiment tag the MLflow 3 UI reads to pick the experiment's landing
# page: without it the UI opens on the GenAI overview (traces, latency).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# MLflow 3.17's UI opens on the GenAI pages unless the browser chose "Model
# training" once (remembered in its local storage) or the link says so.
UI_QUERY = "workflowType=machine_learning"
# A runs-table view (columns, filter, order) the UI loads from an experiment
# tag when a link carries ``viewStateShareKey=<key>`` (its "share" feature).
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
#: The experiment's default runs view: what a seqlab run is compared on.
DEFAULT_VIEW = "seqlab"
DEFAULT_VIEW_COLUMNS = (
    ("params", "model.name"), ("params", "model.cell.name"), ("params", "model.hidden_size"),
    ("params", "optimizer.learning_rate"),
    ("metrics", "val_loss"), ("metrics", "best_val_loss"), ("metrics", "test_loss"), ("metrics", "wall_time_s"),
)


def default_store_dir(store_dir: str | os.PathLike = "mlruns") -> Path:
    return Path(store_dir).expanduser().resolve()


def resolve_tracking_uri(tracking: dict[str, Any], use_env: bool = True) -> str:
    uri = tracking.get("tracking_uri") or (os.environ.get("MLFLOW_TRACKING_URI") if use_env else None)
    if uri:
        return str(uri)
    store = default_store_dir(tracking.get("store_dir") or "mlruns")
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TrackingStoreError(
            f"cannot create the MLflow store folder {store} ({type(err).__name__}: {err.strerror}); "
            "set tracking.store_dir to a writable folder"
        ) from None
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


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def check_store(uri: str, timeout: float = 5.0) -> None:
    """Fail in seconds, with the reason and the fix, when ``uri`` cannot take a run.

    * a server (``http(s)://``): ``GET /health`` must answer OK within
      ``timeout`` (MLflow's own client would retry for minutes);
    * an embedded SQLite store: its folder must be a writable directory, and
      the database must not be write-locked by another process for longer
      than ``timeout``.
    """
    if uri.startswith(("http://", "https://")):
        import requests

        url = uri.rstrip("/") + "/health"
        try:
            response = requests.get(url, timeout=timeout)
            ok = response.status_code == 200
            reason = f"HTTP {response.status_code}"
        except requests.RequestException as err:
            ok, reason = False, type(err).__name__
        if not ok:
            raise TrackingStoreError(
                f"the MLflow tracking server {uri} did not answer {url} within {timeout:g} s ({reason}). "
                "Start it (mlflow server --host 127.0.0.1 --port 5000), fix tracking.tracking_uri / "
                "MLFLOW_TRACKING_URI, or set tracking.fallback=local to record into the local store"
            )
        return
    db = _sqlite_path(uri)
    if db is None:
        return
    folder = db.parent
    if not folder.is_dir():
        raise TrackingStoreError(
            f"the MLflow store folder {folder} is not a directory; set tracking.store_dir to a folder"
        )
    probe = folder / f".seqlab-write-probe-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
        if db.exists() and not os.access(db, os.W_OK):
            raise PermissionError(db)
    except OSError as err:
        raise TrackingStoreError(
            f"the MLflow store {db} is read-only ({type(err).__name__}); set tracking.store_dir to a "
            "writable folder"
        ) from None
    if not db.exists():
        return
    start = time.monotonic()
    try:
        conn = sqlite3.connect(str(db), timeout=timeout)
        try:
            conn.execute("BEGIN IMMEDIATE")  # a write lock: what logging a run needs
            conn.rollback()
        finally:
            conn.close()
    except sqlite3.OperationalError as err:
        raise TrackingStoreError(
            f"the MLflow store {db} stayed locked for {time.monotonic() - start:.0f} s ({err}); another "
            "process holds it: wait for it, or set tracking.store_dir to another folder"
        ) from None


def usable_tracking_uri(tracking: dict[str, Any]) -> str:
    """The configured store after :func:`check_store`; with
    ``tracking.fallback=local`` an unusable server or store falls back to the
    embedded store under ``tracking.store_dir``, with a warning."""
    uri = resolve_tracking_uri(tracking)
    fallback = tracking.get("fallback")
    if fallback not in (None, "local"):
        raise ConfigError(f"tracking.fallback must be local or null, got {fallback!r}")
    timeout = float(tracking.get("probe_timeout_s") or 5.0)
    try:
        check_store(uri, timeout)
        return uri
    except TrackingStoreError as err:
        local = resolve_tracking_uri({"store_dir": tracking.get("store_dir") or "mlruns"}, use_env=False)
        if fallback != "local" or local == uri:
            raise
        check_store(local, timeout)
        log.warning("%s -- recording this run into the local store %s instead (tracking.fallback=local)",
                    err, local)
        print(f"warning: {err}\n  -> tracking.fallback=local: recording into {local}", flush=True)
        return local


def ensure_experiment(tracking: dict[str, Any]) -> tuple[str, str]:
    """Point MLflow at the store and return ``(tracking_uri, experiment_id)``,
    creating the store and the experiment if needed (after :func:`usable_tracking_uri`)."""
    uri = usable_tracking_uri(tracking)
    if uri == resolve_tracking_uri(tracking):
        location = artifact_location(tracking)
    else:  # the local fallback: its own artifact folder, not the server's
        location = (_sqlite_path(uri).parent / "artifacts").as_uri()
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
        # An experiment made before seqlab set these (a kind the user chose is kept).
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        if SHARED_VIEW_PREFIX + DEFAULT_VIEW not in experiment.tags:
            save_runs_view(client, experiment.experiment_id, DEFAULT_VIEW, DEFAULT_VIEW_COLUMNS)
        return uri, experiment.experiment_id
    try:
        experiment_id = client.create_experiment(
            name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
        )
    except mlflow.exceptions.MlflowException:
        # Another process created it between our lookup and create.
        return uri, client.get_experiment_by_name(name).experiment_id
    save_runs_view(client, experiment_id, DEFAULT_VIEW, DEFAULT_VIEW_COLUMNS)
    return uri, experiment_id


def save_runs_view(client: MlflowClient, experiment_id: str, key: str, columns, search_filter: str = "",
                   order_by: tuple[str, str] | None = None, ascending: bool = True,
                   expanded: tuple[str, ...] = ()) -> str:
    """Store a runs-table view as the experiment tag the MLflow UI's shared
    views read, and return its link relative to the UI root
    (``#/experiments/<id>/runs?...&viewStateShareKey=<key>``).

    ``columns`` and ``order_by`` are ``(kind, name)`` pairs, kind one of
    ``params``, ``metrics``, ``tags``, ``attributes``. The format is the
    UI's, not a documented API: should a later UI not read it, the link
    says the view is invalid and the table shows its defaults.
    """
    import json

    def column(kind: str, name: str) -> str:
        return f"{kind}.`{name}`"

    state = {
        # search facets
        "searchFilter": search_filter,
        "orderByKey": column(*order_by) if order_by else "attributes.start_time",
        "orderByAsc": bool(ascending) if order_by else False,
        "startTime": "ALL", "lifecycleFilter": "Active", "modelVersionFilter": "All Runs", "datasetsFilter": [],
        # table state
        "selectedColumns": [column(kind, name) for kind, name in columns],
        "columnOrder": [], "columnWidths": {}, "runsExpanded": {run_id: True for run_id in expanded},
        "runsPinned": [], "runsHidden": [], "runsVisibilityMap": {}, "runsHiddenMode": "FIRST_20_RUNS",
        "viewMaximized": False, "runListHidden": False, "isAccordionReordered": False,
        "useGroupedValuesInCharts": True, "hideEmptyCharts": True, "groupBy": None, "groupsExpanded": {},
        "autoRefreshEnabled": True,
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
    }
    client.set_experiment_tag(experiment_id, SHARED_VIEW_PREFIX + key, json.dumps(state))
    return runs_view_link(experiment_id, key)


def runs_view_link(experiment_id: str, key: str | None = None) -> str:
    """``#/experiments/<id>/runs?workflowType=machine_learning[&viewStateShareKey=<key>]``."""
    view = f"&viewStateShareKey={key}" if key else ""
    return f"#/experiments/{experiment_id}/runs?{UI_QUERY}{view}"


def ui_url(tracking_uri: str, link: str) -> str:
    """The UI address of ``link``: on the tracking server, or for a local
    store on ``mlflow ui``'s default address, with the command that serves it."""
    if str(tracking_uri).startswith(("http://", "https://")):
        return f"{str(tracking_uri).rstrip('/')}/{link}"
    return f"http://127.0.0.1:5000/{link} (after: mlflow ui --backend-store-uri {tracking_uri})"
