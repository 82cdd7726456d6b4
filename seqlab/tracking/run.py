"""The MLflow run lifecycle of one experiment.

:class:`TrackedRun` opens a run (as the child of a sweep's parent run when
one is given), logs tags, params and ``config.yaml``, and closes the run with
the status that matches how the block ended: FINISHED, FAILED (any exception,
the reason as tag ``failure_reason``) or KILLED (Ctrl-C). Metrics and
artifacts logged before a failure stay in the store.

With ``enabled=False`` every method is a no-op, so the experiment code does
not branch on tracking.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from seqlab.tracking.params import to_params

log = logging.getLogger(__name__)

PARENT_RUN_ENV = "SEQLAB_MLFLOW_PARENT_RUN_ID"


def git_commit(cwd: str | os.PathLike | None = None) -> str | None:
    here = cwd or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def version_tags() -> dict[str, str]:
    import keras
    import tensorflow as tf

    import seqlab

    tags = {
        "seqlab.version": seqlab.__version__,
        "tensorflow.version": tf.__version__,
        "keras.version": keras.__version__,
        "keras.backend": keras.backend.backend(),
        "python.version": platform.python_version(),
    }
    commit = git_commit()
    if commit:
        # The tag the MLflow UI shows as the source version.
        tags["mlflow.source.git.commit"] = commit
        tags["git.commit"] = commit
    return tags


class TrackedRun:
    """Context manager around one MLflow run (or nothing, when disabled)."""

    def __init__(
        self,
        tracking: dict[str, Any],
        config: dict[str, Any] | None = None,
        run_name: str | None = None,
        parent_run_id: str | None = None,
    ):
        self.tracking = dict(tracking or {})
        self.enabled = bool(self.tracking.get("enabled", True))
        self.config = config or {}
        self.run_name = run_name or self.tracking.get("run_name")
        self.parent_run_id = parent_run_id or os.environ.get(PARENT_RUN_ENV) or None
        self.run_id: str | None = None
        self.tracking_uri: str | None = None
        self.experiment_id: str | None = None

    # -- lifecycle -----------------------------------------------------
    def __enter__(self) -> TrackedRun:
        if not self.enabled:
            return self
        import mlflow

        from seqlab.tracking.store import ensure_experiment

        self.tracking_uri, self.experiment_id = ensure_experiment(self.tracking)
        if os.environ.get("MLFLOW_RUN_ID"):
            # mlflow.start_run would silently resume that run instead of
            # creating ours; our runs are always new.
            log.warning("ignoring MLFLOW_RUN_ID=%s: seqlab starts a new run", os.environ["MLFLOW_RUN_ID"])
            os.environ.pop("MLFLOW_RUN_ID")
        tags = {**version_tags(), **{str(k): str(v) for k, v in (self.tracking.get("tags") or {}).items()}}
        run = mlflow.start_run(
            experiment_id=self.experiment_id,
            run_name=self.run_name,
            parent_run_id=self.parent_run_id,
            tags=tags,
        )
        self.run_id = run.info.run_id
        if self.config:
            self.log_params(to_params(self.config))
            self.log_text(yaml.safe_dump(self.config, sort_keys=False), "config.yaml")
        log.info("MLflow run %s in %s", self.run_id, self.tracking_uri)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if not self.enabled or self.run_id is None:
            return False
        import mlflow

        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        if exc is not None:
            reason = f"{exc_type.__name__}: {exc}"
            self.set_tag("failure_reason", reason[:4000])
        mlflow.end_run(status=status)
        return False  # never swallow the exception

    # -- logging (all no-ops when disabled) -----------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        if not self.enabled:
            return
        import mlflow

        items = list(params.items())
        for i in range(0, len(items), 100):  # MLflow batch limit
            mlflow.log_params(dict(items[i : i + 100]))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not self.enabled or not metrics:
            return
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def set_tag(self, key: str, value: str) -> None:
        if not self.enabled:
            return
        import mlflow

        mlflow.set_tag(key, value)

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if not self.enabled:
            return
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_text(self, text: str, artifact_file: str) -> None:
        if not self.enabled:
            return
        import mlflow

        mlflow.log_text(text, artifact_file)

    def log_dir(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        if not self.enabled or not Path(path).is_dir() or not any(Path(path).iterdir()):
            return
        import mlflow

        mlflow.log_artifacts(str(path), artifact_path=artifact_path)


def write_temp_text(text: str, name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="seqlab-"))
    path = folder / name
    path.write_text(text)
    return path
