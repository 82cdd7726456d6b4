"""Tracking server mode for real: ``mlflow server`` on 127.0.0.1 (a free port,
SQLite backend and proxied artifact root in tmp), a tiny run and a 2-job
sweep logged to it, read back over the REST API, the server stopped by its
process group."""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from seqlab.experiment import run
from tests.e2e.helpers import compose_cfg

pytestmark = pytest.mark.soak

# Few steps: what is tested is the round trip, not the training.
FAST = ("trainer.steps_per_epoch=4", "trainer.verbose=0", "tracking.log_every_n_steps=2")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(tmp_path: Path, template_db: Path) -> tuple[subprocess.Popen, str]:
    db = tmp_path / "server" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(template_db, db)  # already migrated: the server starts sooner
    port = _free_port()
    mlflow_bin = os.path.join(os.path.dirname(sys.executable), "mlflow")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.Popen(
        [mlflow_bin, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{db}",
         "--serve-artifacts", "--artifacts-destination", str(tmp_path / "server" / "artifacts")],
        stdout=open(tmp_path / "server" / "log.txt", "w"), stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped with its workers
        env=env,
    )
    return proc, f"http://127.0.0.1:{port}"


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).text.strip() == "OK":
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    pytest.fail(f"mlflow server not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def _api(url: str, endpoint: str, body: dict | None = None, **query) -> dict:
    if body is None:
        response = requests.get(f"{url}/api/2.0/mlflow/{endpoint}", params=query, timeout=30)
    else:
        response = requests.post(f"{url}/api/2.0/mlflow/{endpoint}", json=body, timeout=30)
    assert response.status_code == 200, (endpoint, response.text[:500])
    return response.json()


def _tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def _metrics(run: dict) -> dict[str, float]:
    return {m["key"]: m["value"] for m in run["data"].get("metrics", [])}


def test_server_round_trip(tmp_path, data_dir, _empty_mlflow_db):
    proc, url = _start_server(tmp_path, _empty_mlflow_db)
    try:
        _wait_healthy(proc, url, tmp_path / "server" / "log.txt")
        # A 2-job sweep through the console script, and meanwhile one run in
        # this process through the composed config (the two overlap: the
        # test's wall time is the longer of them).
        script = os.path.join(os.path.dirname(sys.executable), "seqlab-train")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        sweep = subprocess.Popen(
            [script, "-m", "debug=tiny", "model.hidden_size=8,16", f"tracking.tracking_uri={url}", *FAST],
            cwd=tmp_path, env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        try:
            cfg = compose_cfg(tmp_path, f"tracking.tracking_uri={url}", *FAST)
            single = run(cfg, output_dir=tmp_path / "out")["run_id"]
            output, _ = sweep.communicate(timeout=240)
        finally:
            if sweep.poll() is None:
                sweep.kill()
                sweep.wait()
        assert sweep.returncode == 0, output[-3000:]

        # Read it all back over REST.
        experiment = _api(url, "experiments/get-by-name", experiment_name="seqlab")["experiment"]
        assert {t["key"]: t["value"] for t in experiment["tags"]}["mlflow.experimentKind"] == "custom_model_development"
        runs = _api(url, "runs/search", {"experiment_ids": [experiment["experiment_id"]], "max_results": 50})["runs"]
        by_name = {r["info"]["run_name"]: r for r in runs}
        assert set(by_name) == {"rnn_lm/lstm", "sweep model.hidden_size=8,16", "model.hidden_size=8", "model.hidden_size=16"}
        assert all(r["info"]["status"] == "FINISHED" for r in runs)
        assert by_name["rnn_lm/lstm"]["info"]["run_id"] == single

        parent = by_name["sweep model.hidden_size=8,16"]
        parent_id = parent["info"]["run_id"]
        children = [by_name["model.hidden_size=8"], by_name["model.hidden_size=16"]]
        for child in children:
            tags = _tags(child)
            assert tags["mlflow.parentRunId"] == parent_id
            assert tags["seqlab.sweep.keys"] == "model.hidden_size" and tags["seqlab.primary_metric"] == "val_loss"
        best = min(children, key=lambda c: _metrics(c)["val_loss"])
        assert _metrics(parent)["best_val_loss"] == pytest.approx(_metrics(best)["val_loss"])
        assert _tags(parent)["seqlab.best_child"] == best["info"]["run_id"]

        # One step axis: val_loss once, at the optimizer step that ended the epoch.
        history = _api(url, "metrics/get-history", run_id=single, metric_key="val_loss")["metrics"]
        assert [m["step"] for m in history] == [4]

        # Artifacts through the server's proxy.
        listed = {f["path"] for f in _api(url, "artifacts/list", run_id=parent_id).get("files", [])}
        assert "children.csv" in listed
        text = requests.get(f"{url}/get-artifact", params={"run_uuid": parent_id, "path": "children.csv"}, timeout=30).text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert sorted(r["model.hidden_size"] for r in rows) == ["16", "8"]
        plots = {f["path"] for f in _api(url, "artifacts/list", run_id=single, path="plots").get("files", [])}
        assert "plots/learning_curves.png" in plots
        # One logged model per trained run (the "Logged models" view).
        models = _api(url, "logged-models/search", {"experiment_ids": [experiment["experiment_id"]]})["models"]
        sources = sorted(m["info"]["source_run_id"] for m in models)
        assert sources == sorted([single, *(c["info"]["run_id"] for c in children)])
    finally:
        _stop(proc)
    assert proc.returncode is not None
    with pytest.raises(requests.RequestException):
        requests.get(f"{url}/health", timeout=2)
