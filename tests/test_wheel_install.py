"""A built wheel, installed into a fresh virtual environment outside the
repository, gives a working ``seqlab-train`` (the config tree ships inside the
package), independent of the editable install the other tests use."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Builds a wheel and a fresh venv (~23 s): outside the default run (pytest -m soak).
pytestmark = pytest.mark.soak


def _run(*command, **kwargs):
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def test_wheel_installs_into_a_fresh_venv_and_trains(tmp_path, data_dir):
    dist = tmp_path / "dist"
    # No build isolation: setuptools and wheel come with the test extra, so
    # the build needs no network.
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", dist, REPO,
         cwd=tmp_path)
    (wheel,) = dist.glob("seqlab-*.whl")

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel)
    # The dependencies (TensorFlow, Hydra, MLflow, ...) come from this
    # environment's site-packages as a plain path entry: .pth files there
    # (the editable seqlab's finder among them) are not processed.
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID")}
    where = _run(python, "-c", "import seqlab, seqlab.cli as c; print(seqlab.__file__); print(c.CONFIG_DIR)",
                 cwd=work, env=env).stdout.split()
    assert Path(where[0]).is_relative_to(site), where  # the wheel's copy, not the repository's
    assert (Path(where[1]) / "train.yaml").is_file() and (Path(where[1]) / "debug" / "tiny.yaml").is_file()

    run = _run(venv / "bin" / "seqlab-train", "debug=tiny", f"tracking.store_dir={work / 'mlruns'}",
               cwd=work, env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert "val_loss=" in run.stdout and "MLflow run" in run.stdout
    assert (work / "mlruns" / "mlflow.db").is_file()
