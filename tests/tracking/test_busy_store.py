"""A busy store (a SQLite file other runs are writing) delays logging and never
fails training: found when a 10-fold sweep and a shortcut-study run shared one
store and the latter ended FAILED on "database is locked" at step 200.

The busy store is simulated by making ``mlflow.log_metrics`` raise what the
SQLAlchemy store raises then: an ``MlflowException`` caused by
``sqlite3.OperationalError('database is locked')`` (a real lock takes SQLite's
5 s busy wait per try)."""

import sqlite3

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from seqlab.tracking import run as run_module
from seqlab.tracking.run import TrackedRun, is_busy_store, retry_busy
from tests.e2e.helpers import store_client


def _locked() -> MlflowException:
    try:
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as cause:
            raise MlflowException("(sqlite3.OperationalError) database is locked [SQL: INSERT ...]") from cause
    except MlflowException as err:
        return err


@pytest.fixture
def busy(monkeypatch):
    """``busy[0]``: how many more writes of metrics find the store locked."""
    monkeypatch.setattr(run_module, "STORE_RETRY_DELAYS", (0.01, 0.01, 0.01))
    real = mlflow.log_metrics
    remaining = [0]

    def log_metrics(*args, **kwargs):
        if remaining[0] > 0:
            remaining[0] -= 1
            raise _locked()
        return real(*args, **kwargs)

    monkeypatch.setattr(mlflow, "log_metrics", log_metrics)
    return remaining


def _tracking(tmp_path):
    return {"enabled": True, "store_dir": str(tmp_path / "mlruns"), "experiment_name": "busy"}


def _history(tmp_path, run_id, key):
    client = store_client(tmp_path)
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


def test_a_busy_store_is_recognised_through_the_exception_chain():
    assert is_busy_store(_locked())
    assert not is_busy_store(MlflowException("RESOURCE_DOES_NOT_EXIST: run not found"))
    assert not is_busy_store(ValueError("database is fine"))


def test_a_write_is_tried_again_while_the_store_is_busy_and_other_errors_raise_at_once():
    calls = []

    def write():
        calls.append(1)
        if len(calls) < 3:
            raise _locked()
        return "ok"

    assert retry_busy(write, "metrics", delays=(0.0, 0.0, 0.0)) == "ok" and len(calls) == 3

    def broken():
        calls.append(1)
        raise MlflowException("INVALID_PARAMETER_VALUE: bad metric")

    calls.clear()
    with pytest.raises(MlflowException, match="bad metric"):
        retry_busy(broken, "metrics", delays=(0.0, 0.0))
    assert len(calls) == 1  # not a busy store: no second try


def test_metrics_wait_out_a_busy_store_and_none_are_lost(tmp_path, busy, caplog):
    with TrackedRun(_tracking(tmp_path), run_name="busy") as tracked:
        tracked.log_metrics({"loss": 3.0}, step=1)
        busy[0] = 2  # locked twice, then free: the retries absorb it
        tracked.log_metrics({"loss": 2.0}, step=2)
        assert tracked.pending_metrics == []
        busy[0] = 100  # locked past every retry: kept, training goes on
        tracked.log_metrics({"loss": 1.5}, step=3)
        tracked.log_metrics({"loss": 1.2}, step=4)
        assert [step for _, step in tracked.pending_metrics] == [3, 4]
        busy[0] = 0  # free again: the backlog goes first, in order
        tracked.log_metrics({"loss": 1.0}, step=5)
        assert tracked.pending_metrics == []
        busy[0] = 100
        tracked.log_metrics({"loss": 0.9}, step=6)  # still pending when the run ends
        busy[0] = 0
    assert "tracking store busy" in caplog.text and "2 metric batches kept" in caplog.text
    assert _history(tmp_path, tracked.run_id, "loss") == [
        (1, 3.0), (2, 2.0), (3, 1.5), (4, 1.2), (5, 1.0), (6, 0.9)
    ]
    assert store_client(tmp_path).get_run(tracked.run_id).info.status == "FINISHED"


def test_any_other_logging_error_still_fails_loudly(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise MlflowException("INVALID_PARAMETER_VALUE: metric value must be a number")

    monkeypatch.setattr(mlflow, "log_metrics", broken)
    with pytest.raises(MlflowException, match="must be a number"):
        with TrackedRun(_tracking(tmp_path), run_name="broken") as tracked:
            tracked.log_metrics({"loss": 1.0}, step=1)
    run = store_client(tmp_path).get_run(tracked.run_id)
    assert run.info.status == "FAILED" and "must be a number" in run.data.tags["failure_reason"]
