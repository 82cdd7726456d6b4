"""The MLflow run lifecycle of one experiment.

:class:`TrackedRun` opens a run (as the child of a sweep's parent run when
one is given), logs tags, params and ``config.yaml``, and closes the run with
the status that matches how the block ended: FINISHED, FAILED (any exception,
the reason as tag ``failure_reason``) or KILLED (Ctrl-C, or SIGINT/SIGTERM
handled by :mod:`seqlab.training.signals`: tag ``seqlab.stop_signal``). Metrics and
artifacts logged before a failure stay in the store.

With ``enabled=False`` every method is a no-op, so the experiment code does
not branch on tracking.
"""

from __future__ import annotations

import json
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
# The config keys a sweep varies (a JSON list), set by the sweep's parent.
SWEEP_KEYS_ENV = "SEQLAB_SWEEP_KEYS"
#: Run tags the runs table and seqlab-report read.
PRIMARY_METRIC_TAG = "seqlab.primary_metric"
DIRECTION_TAG = "seqlab.primary_metric.direction"
SWEEP_KEYS_TAG = "seqlab.sweep.keys"
MAX_RUN_NAME = 250
#: Seconds between tries of a store write that hit a busy store (a SQLite
#: file another process is writing: "database is locked"): ~30 s in all,
#: beyond SQLite's own 5 s wait per try.
STORE_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
_BUSY = ("database is locked", "database is busy", "database table is locked")
#: The logged model's name: ``runs:/<run_id>/model``.
MODEL_NAME = "model"
# Overrides that say where a run is recorded, not what it is.
_UNNAMED_OVERRIDE_PREFIXES = ("tracking.", "hydra.", "hydra/", "trainer.verbose")


def primary_metric(tracking: dict[str, Any]) -> tuple[str, str]:
    """``(metric, "min"|"max")``: the metric that decides which run is best."""
    metric = str(tracking.get("primary_metric") or "val_loss")
    direction = str(tracking.get("primary_metric_direction") or "min").lower()
    if direction not in ("min", "max"):
        from seqlab.errors import ConfigError

        raise ConfigError(
            f"tracking.primary_metric_direction must be min or max, got {direction!r}"
        )
    return metric, direction


def model_label(config: dict[str, Any]) -> str:
    """``rnn_lm/lstm``: the model's name (or builder) and its cell, if any."""
    model = config.get("model") or {}
    name = model.get("name") or str(model.get("_target_", "model")).rsplit(".", 1)[-1]
    name = name.removeprefix("build_")
    cell = model.get("cell")
    cell_name = cell.get("name") if isinstance(cell, dict) else cell if isinstance(cell, str) else None
    return f"{name}/{cell_name}" if cell_name else name


def _hydra_overrides_and_preset() -> tuple[list[str], str | None]:
    """The command line's overrides and the ``experiment=`` choice, when
    called inside a Hydra app (else nothing)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return [], None
        hc = HydraConfig.get()
        preset = hc.runtime.choices.get("experiment")
        return list(hc.overrides.task), (None if preset in (None, "null") else str(preset))
    except Exception:  # no Hydra runtime: a config from compose(), a notebook
        return [], None


def default_run_name(config: dict[str, Any]) -> str:
    """What the run is: the preset (``experiment=`` choice, or a ``task_name``
    other than ``train``) or the model, then the overrides that define it,
    e.g. ``rnn_lm/lstm debug=tiny model.hidden_size=64``."""
    overrides, preset = _hydra_overrides_and_preset()
    task = config.get("task_name")
    head = preset or (task if task and task != "train" else None) or model_label(config)
    defining = [
        o for o in overrides
        if not o.lstrip("+~").startswith(_UNNAMED_OVERRIDE_PREFIXES)
        and not o.lstrip("+~").startswith("experiment=")
    ]
    name = " ".join([head, *defining])
    return name if len(name) <= MAX_RUN_NAME else name[: MAX_RUN_NAME - 3] + "..."


def sweep_keys_from_env() -> list[str]:
    try:
        keys = json.loads(os.environ.get(SWEEP_KEYS_ENV) or "[]")
    except ValueError:
        return []
    return [str(k) for k in keys] if isinstance(keys, list) else []


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


def is_busy_store(err: BaseException) -> bool:
    """True for a store that is momentarily busy (another process holds the
    SQLite write lock), i.e. worth trying again; anything else is not."""
    while err is not None:
        if any(text in str(err) for text in _BUSY):
            return True
        err = err.__cause__ or err.__context__
    return False


def retry_busy(write, what: str, delays=None):
    """Run ``write()``, trying again while the store is busy (:func:`is_busy_store`).

    Parallel runs (a sweep's jobs, two studies) share one SQLite file; a write
    that finds it locked for longer than SQLite's own wait raises. Such a
    write is tried again after each of ``delays`` (default
    :data:`STORE_RETRY_DELAYS`); the last failure, or any other error, is
    raised.
    """
    import time

    delays = STORE_RETRY_DELAYS if delays is None else delays
    for attempt, delay in enumerate([*delays, None]):
        try:
            return write()
        except Exception as err:
            if delay is None or not is_busy_store(err):
                raise
            if attempt == 0:
                log.warning("tracking store busy (%s); trying again for up to %.0f s", what, sum(delays))
            time.sleep(delay)


class TrackedRun:
    """Context manager around one MLflow run (or nothing, when disabled).

    A store that stays busy (a SQLite file locked by other runs) delays
    metric logging but never fails training: a metrics batch that still
    cannot be written after :data:`STORE_RETRY_DELAYS` is kept, with a
    warning, and written with the next batch or when the run ends.
    """

    def __init__(
        self,
        tracking: dict[str, Any],
        config: dict[str, Any] | None = None,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        resume_run_id: str | None = None,
    ):
        self.tracking = dict(tracking or {})
        self.enabled = bool(self.tracking.get("enabled", True))
        self.config = config or {}
        self.run_name = run_name or self.tracking.get("run_name") or default_run_name(self.config)
        self.parent_run_id = parent_run_id or os.environ.get(PARENT_RUN_ENV) or None
        self.run_id: str | None = None
        self.tracking_uri: str | None = None
        self.experiment_id: str | None = None
        # seqlab-train resume=<id>: re-open that run (seqlab.training.resume).
        self.resume_run_id = resume_run_id
        # (metrics, step) batches a busy store refused; written with the next.
        self.pending_metrics: list[tuple[dict[str, float], int | None]] = []

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
        if self.resume_run_id:
            # Its name, tags, params and config.yaml stay as first logged.
            run = mlflow.start_run(run_id=self.resume_run_id)
            self.run_id, self.run_name = run.info.run_id, run.info.run_name
            log.info("MLflow run %s re-opened in %s", self.run_id, self.tracking_uri)
            return self
        metric, direction = primary_metric(self.tracking)
        tags = {**version_tags(), PRIMARY_METRIC_TAG: metric, DIRECTION_TAG: direction}
        if self.parent_run_id and sweep_keys_from_env():
            tags[SWEEP_KEYS_TAG] = ",".join(sweep_keys_from_env())
        tags.update({str(k): str(v) for k, v in (self.tracking.get("tags") or {}).items()})
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
        from seqlab.tracking.store import UI_QUERY, ui_url

        link = f"#/experiments/{self.experiment_id}/runs/{self.run_id}?{UI_QUERY}"
        log.info("MLflow run %s in %s: %s", self.run_id, self.tracking_uri, ui_url(self.tracking_uri, link))
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if not self.enabled or self.run_id is None:
            return False
        import mlflow

        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            # Ctrl-C, or seqlab.training.signals.StopRequested (SIGINT/SIGTERM
            # at a batch boundary), which names its signal.
            status = "KILLED"
            signal_name = getattr(exc, "signal_name", None)
            if signal_name:
                self.set_tag("seqlab.stop_signal", signal_name)
                exc.run_id = self.run_id  # for the CLI's "resume=<run_id>" hint
        else:
            status = "FAILED"
        if self.pending_metrics:
            try:
                self._write_pending()
            except Exception as err:  # the run's status matters more
                log.warning("%d metric batches could not be written: %s", len(self.pending_metrics), err)
        if exc is not None:
            reason = f"{exc_type.__name__}: {exc}"
            self.set_tag("failure_reason", reason[:4000])
        retry_busy(lambda: mlflow.end_run(status=status), "end run")
        return False  # never swallow the exception

    # -- logging (all no-ops when disabled) -----------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        if not self.enabled:
            return
        import mlflow

        items = list(params.items())
        for i in range(0, len(items), 100):  # MLflow batch limit
            batch = dict(items[i : i + 100])
            retry_busy(lambda batch=batch: mlflow.log_params(batch), "params")

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log ``metrics`` at ``step``; a busy store delays them, never fails the run."""
        if not self.enabled or not metrics:
            return
        # Already behind: one quick try (no waiting at every step); else retries.
        backlog = bool(self.pending_metrics)
        self.pending_metrics.append(({k: float(v) for k, v in metrics.items()}, step))
        try:
            self._write_pending(delays=() if backlog else None)
        except Exception as err:
            if not is_busy_store(err):
                raise
            log.warning(
                "tracking store still busy: %d metric batches kept, written with the next ones",
                len(self.pending_metrics),
            )

    def _write_pending(self, delays=None) -> None:
        import mlflow

        while self.pending_metrics:
            metrics, step = self.pending_metrics[0]
            retry_busy(lambda m=metrics, s=step: mlflow.log_metrics(m, step=s), "metrics", delays)
            self.pending_metrics.pop(0)

    def set_tag(self, key: str, value: str) -> None:
        if not self.enabled:
            return
        import mlflow

        retry_busy(lambda: mlflow.set_tag(key, value), "tag")

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

    def plot_learning_curves(self, out_path: str | os.PathLike) -> Path | None:
        """Draw the run's learning curves (loss, val_loss and the primary
        metric against the step) from the store into ``out_path``; a failure
        is a warning, never a failed run."""
        if not self.enabled or self.run_id is None:
            return None
        from seqlab.tracking.plots import learning_curves_from_run

        try:
            return learning_curves_from_run(
                self.tracking_uri, self.run_id, Path(out_path), primary=primary_metric(self.tracking)[0],
                title=self.run_name,
            )
        except Exception as err:  # a plot must never cost the run
            log.warning("learning-curve plot failed: %s", err)
            return None

    def log_model(self, model, name: str = MODEL_NAME, step: int = 0) -> str | None:
        """Log ``model`` with the MLflow Keras flavour (a "logged model" with a
        signature) under ``runs:/<run_id>/<name>``; returns its model URI.
        :func:`load_logged_model` loads it back."""
        if not self.enabled:
            return None
        import mlflow.keras

        info = mlflow.keras.log_model(
            model,
            name=name,
            signature=keras_signature(model),
            # Given, not inferred: inference reloads the model in a subprocess.
            pip_requirements=pip_requirements(),
            metadata={"custom_objects": CUSTOM_OBJECTS_NOTE},
            step=int(step),
        )
        return f"runs:/{self.run_id}/{name}" if info is not None else None


CUSTOM_OBJECTS_NOTE = (
    "seqlab objects (Keras package 'seqlab'): import seqlab.layers, seqlab.metrics and "
    "seqlab.training.schedules before mlflow.keras.load_model, or pass "
    "custom_objects=seqlab.tracking.run.seqlab_custom_objects(), or use "
    "seqlab.tracking.run.load_logged_model(uri)"
)


def keras_signature(model):
    """An MLflow tensor signature from the model's symbolic inputs and outputs
    (the batch dimension as -1), or None for a model without them."""
    import keras
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    def spec(tensor, name=None):
        shape = [-1 if d is None else int(d) for d in tensor.shape]
        return TensorSpec(np.dtype(keras.backend.standardize_dtype(tensor.dtype)), [-1, *shape[1:]], name)

    def schema(tensors, kind):
        if len(tensors) == 1:
            return Schema([spec(tensors[0])])
        # MLflow names every tensor of a multi-tensor schema (a seq2seq model's
        # source and target_in): the Keras names, or input_0, ... where they repeat.
        names = [str(getattr(t, "name", "") or "") for t in tensors]
        if len(set(names)) != len(names) or not all(names):
            names = [f"{kind}_{i}" for i in range(len(tensors))]
        return Schema([spec(t, n) for t, n in zip(tensors, names)])

    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError):  # a subclassed model, never called symbolically
        return None
    if not inputs or not outputs:
        return None
    return ModelSignature(inputs=schema(inputs, "input"), outputs=schema(outputs, "output"))


def pip_requirements() -> list[str]:
    from importlib import metadata

    requirements = []
    for dist in ("keras", "tensorflow", "tensorflow-cpu", "seqlab"):
        try:
            requirements.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return requirements


def seqlab_custom_objects() -> dict[str, Any]:
    """Every object registered under Keras' package name ``seqlab``."""
    import keras

    # Importing registers them: the layers, and the metrics and schedules a
    # compiled model's config names.
    import seqlab.layers  # noqa: F401
    import seqlab.metrics  # noqa: F401
    import seqlab.training.schedules  # noqa: F401

    return {k: v for k, v in keras.saving.get_custom_objects().items() if k.startswith("seqlab>")}


def load_logged_model(model_uri: str, tracking_uri: str | None = None, dst_path: str | None = None):
    """``mlflow.keras.load_model(model_uri)`` with seqlab's layers registered
    (``runs:/<run_id>/model``, ``models:/<model_id>``); with ``tracking_uri``
    the model is fetched from that store, not the process's current one."""
    import mlflow
    import mlflow.keras

    if tracking_uri:
        # runs:/ URIs of logged models resolve through the global tracking
        # URI whatever download_artifacts is given: point it there meanwhile.
        previous, env = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(tracking_uri)
        try:
            model_uri = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=dst_path)
        finally:
            mlflow.set_tracking_uri(previous)
            if env is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = env
    return mlflow.keras.load_model(
        model_uri, custom_objects=seqlab_custom_objects(), load_model_kwargs={"compile": False}
    )


def write_temp_text(text: str, name: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="seqlab-"))
    path = folder / name
    path.write_text(text)
    return path
