"""Tracking store trouble fails in seconds with the reason, or falls back to
the local store with tracking.fallback=local; nothing trained is lost."""

import os
import socket
import sqlite3
import time

import pytest

from seqlab.errors import ConfigError, TrackingStoreError
from seqlab.experiment import run
from seqlab.tracking.store import check_store, usable_tracking_uri
from tests.e2e.helpers import all_runs, compose_cfg, store_client


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens


def _silent_server():
    """A socket that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    return server, f"http://127.0.0.1:{server.getsockname()[1]}"


def test_server_down_is_one_clear_error_in_seconds():
    uri = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(TrackingStoreError, match=rf"{uri} did not answer .*/health.*tracking.fallback=local"):
        check_store(uri, timeout=2)
    assert time.monotonic() - start < 10


def test_a_server_that_hangs_times_out():
    server, uri = _silent_server()
    try:
        start = time.monotonic()
        with pytest.raises(TrackingStoreError, match="within 1 s"):
            check_store(uri, timeout=1)
        assert time.monotonic() - start < 5
    finally:
        server.close()


def test_store_dir_that_is_a_file(tmp_path):
    (tmp_path / "notadir").write_text("x")
    with pytest.raises(TrackingStoreError, match="not a directory"):
        check_store(f"sqlite:///{tmp_path / 'notadir' / 'mlflow.db'}")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_store(tmp_path):
    store = tmp_path / "ro"
    store.mkdir()
    store.chmod(0o555)
    try:
        with pytest.raises(TrackingStoreError, match="read-only"):
            check_store(f"sqlite:///{store / 'mlflow.db'}")
    finally:
        store.chmod(0o755)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_read_only_file_system_even_for_root():
    with pytest.raises(TrackingStoreError, match="/proc/mlflow.db is read-only"):
        check_store("sqlite:////proc/mlflow.db")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_store_dir_that_cannot_be_created(tmp_path):
    cfg = compose_cfg(tmp_path, "tracking.store_dir=/proc/seqlab/mlruns")
    with pytest.raises(TrackingStoreError, match="cannot create the MLflow store folder /proc/seqlab/mlruns"):
        run(cfg, output_dir=tmp_path / "out")


def test_locked_sqlite_store(tmp_path):
    db = tmp_path / "mlflow.db"
    holder = sqlite3.connect(str(db), check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        with pytest.raises(TrackingStoreError, match="locked.*another process"):
            check_store(f"sqlite:///{db}", timeout=1)
        assert time.monotonic() - start < 5
    finally:
        holder.rollback()
        holder.close()
    check_store(f"sqlite:///{db}", timeout=1)  # released: fine


def test_fallback_must_be_local_or_null(tmp_path):
    with pytest.raises(ConfigError, match="tracking.fallback must be local or null, got 'remote'"):
        usable_tracking_uri({"store_dir": str(tmp_path), "fallback": "remote"})


def test_server_down_fails_the_run_before_training(tmp_path):
    uri = f"http://127.0.0.1:{_closed_port()}"
    cfg = compose_cfg(tmp_path, f"tracking.tracking_uri={uri}", "tracking.probe_timeout_s=2")
    start = time.monotonic()
    with pytest.raises(TrackingStoreError, match="did not answer"):
        run(cfg, output_dir=tmp_path / "out")
    assert time.monotonic() - start < 10
    assert not (tmp_path / "out" / "checkpoints").exists()  # nothing trained, nothing to lose


@pytest.mark.slow
def test_fallback_local_records_the_run_into_the_local_store(tmp_path, data_dir, capsys):
    uri = f"http://127.0.0.1:{_closed_port()}"
    cfg = compose_cfg(tmp_path, f"tracking.tracking_uri={uri}", "tracking.fallback=local",
                      "tracking.probe_timeout_s=2")
    results = run(cfg, output_dir=tmp_path / "out")
    assert "tracking.fallback=local: recording into sqlite:///" in capsys.readouterr().out
    (r,) = all_runs(store_client(tmp_path))
    assert r.info.status == "FINISHED" and r.info.run_id == results["run_id"]
    assert r.info.artifact_uri.startswith((tmp_path / "mlruns" / "artifacts").as_uri())
    assert (tmp_path / "out" / "checkpoints" / "last.keras").exists()
