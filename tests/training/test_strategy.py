"""trainer.strategy: mirrored over two logical CPUs and two multi-worker processes
train to the weights of one device with the same global batch."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqlab.errors import ConfigError
from seqlab.experiment import run
from seqlab.training.strategy import check_strategy, is_chief
from tests.e2e.helpers import all_runs, compose_cfg, store_client

# Two optimizer steps of the tiny char LM: what is compared is the step, not the training.
STEPS = ["debug=tiny", "trainer.steps_per_epoch=2", "trainer.test=false", "tracking.log_model=false"]


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _train(tmp_path: Path, name: str, *overrides: str, env=None, wait=True):
    script = Path(sys.executable).with_name("seqlab-train")
    out = tmp_path / name
    cmd = [str(script), *STEPS, f"hydra.run.dir={out}", f"tracking.store_dir={tmp_path / 'mlruns'}",
           *overrides]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TF_CONFIG"))}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env={**environment, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, output[-3000:]
    return proc, out / "checkpoints" / "last.keras"


def _weights(path: Path):
    import keras

    import seqlab.layers  # noqa: F401  (registers the layers)

    return keras.models.load_model(path, compile=False).get_weights()


def _assert_same_weights(a, b, atol=1e-5):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=atol)


@pytest.mark.parametrize(
    "name, devices, message",
    [("horovod", None, "trainer.strategy must be one of default, mirrored, multi_worker, got 'horovod'"),
     ("mirrored", 0, "trainer.cpu_devices must be a positive integer or null, got 0"),
     ("multi_worker", None, "trainer.strategy=multi_worker needs TF_CONFIG")],
)
def test_bad_strategy_values(monkeypatch, name, devices, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match=message):
        check_strategy(name, devices)


def test_bad_strategy_fails_before_a_run_opens(tmp_path):
    with pytest.raises(ConfigError, match="trainer.strategy must be one of"):
        run(compose_cfg(tmp_path, "trainer.strategy=tpu"), output_dir=tmp_path / "out")
    assert all_runs(store_client(tmp_path)) == []


@pytest.mark.parametrize(
    "config, chief",
    [(None, True),
     ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}, True),
     ({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}, False),
     ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False),
     ({"cluster": {"chief": ["c:0"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True)],
)
def test_who_logs(monkeypatch, config, chief):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert is_chief() is chief


@pytest.mark.slow
def test_mirrored_and_multi_worker_steps_equal_the_single_device_step(tmp_path, data_dir):
    # Two workers on 127.0.0.1, started together, each with its TF_CONFIG.
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    workers = [
        _train(tmp_path, f"worker{i}", "trainer.strategy=multi_worker", wait=False,
               env={"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})})
        for i in range(2)
    ]
    try:
        outputs = [proc.communicate(timeout=300)[0] for proc, _ in workers]
    finally:
        for proc, _ in workers:
            if proc.poll() is None:
                proc.kill()
    for (proc, _), output in zip(workers, outputs):
        assert proc.returncode == 0, output[-3000:]
    # Only the chief (worker 0) recorded a run and kept a checkpoint.
    runs = all_runs(store_client(tmp_path))
    assert len(runs) == 1 and runs[0].data.params["trainer.strategy"] == "multi_worker"
    assert not workers[1][1].exists()
    multi = _weights(workers[0][1])

    # The single-device reference in this process (no TensorFlow start-up to pay).
    run(compose_cfg(tmp_path, *STEPS[1:], debug="tiny"), output_dir=tmp_path / "single")
    _, mirrored_path = _train(tmp_path, "mirrored", "trainer.strategy=mirrored", "trainer.cpu_devices=2")
    single = _weights(tmp_path / "single" / "checkpoints" / "last.keras")
    _assert_same_weights(_weights(mirrored_path), single)
    _assert_same_weights(multi, single)
    # and the two steps moved the weights: not two untrained models
    assert len(all_runs(store_client(tmp_path))) == 3
