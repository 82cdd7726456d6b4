"""Compose the real config tree with tiny overrides, and read back MLflow."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from seqlab.cli import CONFIG_DIR

# conf/debug/tiny.yaml: seconds on 2 cores, real data all the same.
TINY = ["debug=tiny"]


def compose_cfg(tmp_path: Path, *overrides: str, name: str = "train", debug: str | None = "tiny"):
    """The real config tree with ``debug=<debug>`` (None: none) and a store in tmp_path."""
    preset = [f"debug={debug}"] if debug else []
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(name, overrides=[*preset, f"tracking.store_dir={tmp_path / 'mlruns'}", *overrides])


def store_client(tmp_path: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")


def all_runs(client: MlflowClient, experiment: str = "seqlab"):
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])
