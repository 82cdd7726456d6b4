"""Shared test setup: real data from ../shared/data, a private TFDS cache and
MLflow store per test session (per xdist worker), quiet TensorFlow."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("NO_GCE_CHECK", "true")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"
if "SEQLAB_DATA_DIR" not in os.environ and DEFAULT_DATA_DIR.is_dir():
    os.environ["SEQLAB_DATA_DIR"] = str(DEFAULT_DATA_DIR)
# Resolved once, here: the console-script tests run in other folders, where a
# relative path (the README writes SEQLAB_DATA_DIR=../shared/data) would point
# nowhere and send the loader to the network.
if os.environ.get("SEQLAB_DATA_DIR"):
    os.environ["SEQLAB_DATA_DIR"] = str(Path(os.environ["SEQLAB_DATA_DIR"]).resolve())
# Test modules define callbacks and tasks that configs name (tests.training...):
# admit the tests package, as a user admits theirs (seqlab.instantiate).
os.environ.setdefault("SEQLAB_ALLOWED_TARGETS", "tests")
# In CI a missing corpus is a failure, not a skip: otherwise CI passes without
# a single end-to-end test.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _private_caches(tmp_path_factory):
    """Each worker prepares corpora into its own TFDS cache (no cross-process races)."""
    cache = tmp_path_factory.mktemp("seqlab-cache")
    old = os.environ.get("SEQLAB_CACHE_DIR")
    os.environ["SEQLAB_CACHE_DIR"] = str(cache)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_RUN_ID", None)
    yield
    if old is None:
        os.environ.pop("SEQLAB_CACHE_DIR", None)
    else:
        os.environ["SEQLAB_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def _empty_mlflow_db(tmp_path_factory) -> Path:
    """A migrated, empty MLflow SQLite store, made once per worker: creating
    one runs MLflow's schema migrations, which take seconds."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(autouse=True)
def _no_leaked_tracking_uri():
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which would point
    every later test in the same worker at an earlier test's store."""
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield
    import sys

    if "mlflow" in sys.modules:
        import mlflow

        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture(autouse=True)
def _fresh_store_in_tmp_path(request, _empty_mlflow_db):
    """Every test that uses ``tmp_path`` finds a ready store at tmp_path/mlruns."""
    if "tmp_path" not in request.fixturenames:
        return
    import shutil

    store = request.getfixturevalue("tmp_path") / "mlruns"
    store.mkdir(exist_ok=True)
    shutil.copy(_empty_mlflow_db, store / "mlflow.db")


def require_data(*needed: str) -> Path:
    """The shared data folder, when it holds every file of ``needed``; otherwise the test
    is skipped, or fails under CI=true (where the real-data tests must run)."""
    path = Path(os.environ.get("SEQLAB_DATA_DIR", DEFAULT_DATA_DIR))
    missing = [f for f in needed if not (path / f).is_file()]
    if missing:
        message = f"real data not found under {path} ({missing[0]}); set SEQLAB_DATA_DIR"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the end-to-end tests must run)")
        pytest.skip(message)
    return path


@pytest.fixture
def data_dir() -> Path:
    return require_data("tiny_shakespeare/input.txt")
