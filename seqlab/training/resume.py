"""Exact resume of an interrupted run: ``seqlab-train resume=<run_id>``.

At every epoch end :class:`seqlab.training.callbacks.LastGoodCheckpoint`
writes, in the run's folder (``<output_dir>/checkpoints/``):

- ``last.keras``: the model with its optimizer (weights, Adam moments and
  ``iterations``, hence the learning-rate schedule's position);
- ``last.json``: what the ``.keras`` file does not hold (:func:`capture_state`):
  the epochs and optimizer steps done, the run's seed, the states of the
  model's Keras ``SeedGenerator``s (dropout masks), NumPy's and Python's
  global random states.

A stop by SIGINT/SIGTERM (:mod:`seqlab.training.signals`) also writes
``stopped.keras`` / ``stopped.json`` there: the same at the batch where it
stopped, plus the batches done in that epoch and the epoch's metric
accumulators. Resume takes it when it is later than ``last.*`` (and the run
reads one pass per epoch, ``trainer.steps_per_epoch: null``): it first
trains the rest of the stopped epoch (``train.skip(batches)`` after the
replay of the epochs done, see :meth:`ResumePoint.fit_phases`), then the
epochs after it.

Every run records its folder as tag ``seqlab.output_dir``. Resuming
(:func:`resume_config`, then :func:`find_resume_point` inside
:func:`seqlab.experiment.run`) takes the run's config from its
``config.yaml`` artifact, finds the checkpoint in that folder (or in the
run's ``checkpoints/`` artifacts, when the checkpoint callback logged them),
re-opens the same MLflow run, rebuilds data and model exactly as the first
process did (same seed), loads weights and optimizer, restores the random
states, puts the training data where the interrupted run left it
(:func:`fast_forward`) and continues with ``fit(initial_epoch=...)``. Metrics
continue at the optimizer step; the run ends FINISHED.

The data position is restored without changing what a run that is not
resumed reads (the main job's batch order is today's): a ``shuffle`` with a
fixed seed and ``reshuffle_each_iteration`` takes the order of its k-th
iterator from a seed generator that advances once per iterator created, so
:func:`fast_forward` recreates the iterators the interrupted ``fit`` had
created (see there) instead of deriving new per-epoch seeds.

Overrides given with ``resume=`` are limited to :data:`RESUME_OVERRIDES`:
where the store is, the verbosity, and ``trainer.epochs`` to train longer
than first planned (the learning-rate schedule is then rebuilt for the new
total, from the restored step on). Anything else would make the resumed run
a different experiment; start a new run for that.

What is not restored: TensorFlow's stateful random ops (``tf.random.*``
without a Keras ``SeedGenerator``), whose state lives inside their kernels;
callbacks that count steps themselves from ``on_train_begin`` restart at 0;
step metrics logged after the last checkpoint and before the interruption
are logged again (the same values, under determinism) when the resumed run
passes those steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from seqlab.errors import ConfigError

log = logging.getLogger(__name__)

STATE_FORMAT = 1
#: Tag every tracked run carries: its local output folder (checkpoints live there).
OUTPUT_DIR_TAG = "seqlab.output_dir"
#: Tag a resumed run carries: from which epoch and step, after which status.
RESUMED_TAG = "seqlab.resumed"
#: Where the checkpoint lives, relative to the output folder and as artifacts.
CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_NAME = "last.keras"
#: Beside it: where a stop by signal left the run, mid-epoch (seqlab.training.signals).
STOPPED_NAME = "stopped.keras"
#: The only overrides ``resume=<run_id>`` accepts; the rest comes from the run.
RESUME_OVERRIDES = ("resume", "trainer.epochs", "trainer.verbose", "tracking.store_dir", "tracking.tracking_uri")


# --------------------------------------------------------------- random states
def seed_generator_states(model: keras.Model) -> list:
    """The state variables of the model's Keras ``SeedGenerator``s (dropout
    masks), in the model's variable order. ``model.save`` does not store them."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights and v.name == "seed_generator_state"]


def capture_state(model: keras.Model, *, epoch: int, seed: int | None) -> dict[str, Any]:
    """What resuming after epoch ``epoch`` (1-based, done) needs beside ``last.keras``."""
    np_state = np.random.get_state()
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "format": STATE_FORMAT,
        "epoch": int(epoch),
        "global_step": int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        "seed": seed,
        "seed_generators": [keras.ops.convert_to_numpy(v).tolist() for v in seed_generator_states(model)],
        "numpy_random": [np_state[0], np_state[1].tolist(), *[_plain(x) for x in np_state[2:]]],
        "python_random": [py_version, list(py_internal), py_gauss],
    }


def _plain(x):
    return x.item() if isinstance(x, np.generic) else x


def restore_random_state(model: keras.Model, state: dict[str, Any]) -> None:
    variables = seed_generator_states(model)
    saved = state.get("seed_generators", [])
    if len(variables) != len(saved):
        raise ConfigError(
            f"the checkpoint holds {len(saved)} random-generator states but the rebuilt model has "
            f"{len(variables)}: the model is not the one that was checkpointed"
        )
    for variable, value in zip(variables, saved, strict=True):
        variable.assign(np.asarray(value, dtype=variable.dtype))
    kind, keys, pos, has_gauss, cached = state["numpy_random"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python_random"]
    random.setstate((version, tuple(internal), gauss))


# ----------------------------------------------------------------- checkpoints
def state_path(checkpoint: Path) -> Path:
    """``checkpoints/last.keras`` -> ``checkpoints/last.json``."""
    return Path(checkpoint).with_suffix(".json")


def _replace_atomically(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename: an
    interruption leaves the previous file, never half of a new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_checkpoint(model: keras.Model, path: Path, state: dict[str, Any]) -> None:
    """``model.save(path)`` (with its optimizer) and the resume state beside it."""
    path = Path(path)
    _replace_atomically(path, lambda tmp: model.save(tmp))
    _replace_atomically(state_path(path), lambda tmp: tmp.write_text(json.dumps(state)))


def read_state(path: Path) -> dict[str, Any]:
    state = json.loads(Path(path).read_text())
    if state.get("format") != STATE_FORMAT:
        raise ConfigError(f"{path}: resume state format {state.get('format')!r}, expected {STATE_FORMAT}")
    return state


# ----------------------------------------------------------------- determinism
@contextlib.contextmanager
def op_determinism(enabled: bool) -> Iterator[None]:
    """``trainer.deterministic``: TensorFlow's op determinism for the block
    (``tf.config.experimental.enable_op_determinism``), switched off again
    after it if it was off before, so later runs in the process (a sequential
    sweep, a test session) are not slowed down or refused unseeded ops."""
    if not enabled:
        yield
        return
    from tensorflow.python.framework import config as tf_config  # no public disable/query

    before = tf_config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    try:
        yield
    finally:
        if not before:
            tf_config.disable_op_determinism()


# ----------------------------------------------------------------- data position
class _ReplayModel(keras.Model):
    """Trains nothing: ``fit`` on it reads the data exactly as a real ``fit``."""

    def train_step(self, data):
        return {"replayed": keras.ops.zeros(())}


def fast_forward(
    train: tf.data.Dataset, *, epochs_done: int, global_step: int, steps_per_epoch: int | None
) -> tf.data.Dataset:
    """The training dataset to hand ``fit(..., initial_epoch=epochs_done)``
    so that it reads what the interrupted run would have read next.

    ``steps_per_epoch=None`` (one pass over ``train`` per epoch): Keras
    creates the epoch's iterators itself (in Keras 3.15 two per epoch when
    the number of batches is known, one otherwise), and each new iterator
    advances every reshuffling ``shuffle`` in ``train`` to its next order. A
    ``fit`` of ``epochs_done`` epochs on a model that trains nothing replays
    exactly those iterators (and reads the data, which is cheap next to
    training), so the real ``fit`` continues with epoch ``epochs_done``'s order.

    ``steps_per_epoch`` set (``trainer.steps_per_epoch``: ``fit`` reads one
    iterator over ``train.repeat()`` for the whole run, across epochs): create
    and drop one iterator of ``train`` per pass done (reading nothing), then
    skip the batches of the unfinished pass; when ``train``'s length is
    unknown, read and skip all ``global_step`` batches.
    """
    if steps_per_epoch is None:
        if epochs_done > 0:
            replay = _ReplayModel()
            replay.compile()
            replay.fit(train, epochs=int(epochs_done), shuffle=False, verbose=0)
        return train
    batches = int(train.cardinality())
    if batches <= 0:  # unknown or infinite: read the stream up to the step
        return train.repeat().skip(int(global_step))
    for _ in range(int(global_step) // batches):
        iter(train)
    return train.repeat().skip(int(global_step) % batches)


# ----------------------------------------------------------------- finding the run
def _client(tracking: dict[str, Any]):
    from mlflow.tracking import MlflowClient

    from seqlab.tracking.store import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking)
    return MlflowClient(tracking_uri=uri), uri


def _get_run(client, uri: str, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        raise ConfigError(
            f"resume={run_id}: no such run in {uri}; check the run id (seqlab-report or the MLflow UI "
            "list them) and point tracking.store_dir or MLFLOW_TRACKING_URI at the store it was logged to"
        ) from None


def refused_overrides(overrides: Iterable[str]) -> list[str]:
    """The command-line overrides ``resume=`` does not accept."""
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in RESUME_OVERRIDES]


def resume_config(cfg: DictConfig, overrides: Iterable[str] = ()) -> DictConfig:
    """The config to resume run ``cfg.resume`` with: its ``config.yaml``, with
    ``resume`` set, the store it was found in, and the overrides of
    :data:`RESUME_OVERRIDES` among ``overrides`` (the command line's, e.g.
    ``["resume=<id>", "trainer.epochs=8"]``) taken from ``cfg``; any other
    override is refused."""
    run_id = str(cfg.resume)
    overrides = list(overrides)
    refused = refused_overrides(overrides)
    if refused:
        raise ConfigError(
            f"resume={run_id} continues the run with its own config; it accepts only "
            f"{', '.join(RESUME_OVERRIDES[1:])}, got {' '.join(refused)} (start a new run to change the rest)"
        )
    tracking = OmegaConf.to_container(cfg.tracking, resolve=True) if cfg.get("tracking") else {}
    if not tracking.get("enabled", True):
        raise ConfigError(f"resume={run_id} needs MLflow tracking; drop tracking=none")
    client, uri = _client(tracking)
    _get_run(client, uri, run_id)
    with tempfile.TemporaryDirectory(prefix="seqlab-resume-") as tmp:
        try:
            path = client.download_artifacts(run_id, "config.yaml", tmp)
        except Exception:
            raise ConfigError(
                f"run {run_id} has no config.yaml artifact to resume from (it was not started by "
                "seqlab-train); start a new run"
            ) from None
        loaded = OmegaConf.create(yaml.safe_load(Path(path).read_text()))
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    with open_dict(loaded):
        loaded.resume = run_id
        # The store the run was found in, wherever the command runs from.
        loaded.tracking.enabled = True
        loaded.tracking.tracking_uri = uri
        for key in ("trainer.epochs", "trainer.verbose"):
            if key in given:
                OmegaConf.update(loaded, key, OmegaConf.select(cfg, key), force_add=True)
    return loaded


@dataclasses.dataclass
class ResumePoint:
    """A checkpoint of run ``run_id`` to continue from."""

    run_id: str
    output_dir: Path
    checkpoint: Path
    state: dict[str, Any]
    status: str
    failure_reason: str | None = None
    # trainer.epochs of the resumed run: it trains epochs epoch+1 .. epochs.
    epochs: int | None = None

    @property
    def epoch(self) -> int:
        """Epochs done: ``fit``'s ``initial_epoch``."""
        return int(self.state["epoch"])

    @property
    def global_step(self) -> int:
        return int(self.state["global_step"])

    def restore(self, model: keras.Model) -> None:
        """Weights, optimizer state (built first, so ``load_weights`` fills
        it) and random states of the compiled ``model``."""
        model.optimizer.build(model.trainable_variables)
        model.load_weights(self.checkpoint)
        step = int(keras.ops.convert_to_numpy(model.optimizer.iterations))
        if step != self.global_step:
            raise ConfigError(
                f"run {self.run_id}: {self.checkpoint} holds the optimizer at step {step}, its "
                f"{state_path(self.checkpoint).name} says step {self.global_step}; the checkpoint was "
                "cut short, it cannot be resumed exactly"
            )
        restore_random_state(model, self.state)

    @property
    def batch(self) -> int:
        """Batches done in the unfinished epoch (a ``stopped.*`` checkpoint), else 0."""
        return int(self.state.get("batch", 0))

    def train_dataset(self, train: tf.data.Dataset, *, steps_per_epoch: int | None) -> tf.data.Dataset:
        """``train`` (the bundle's, not repeated) where the run left it: see :func:`fast_forward`."""
        return fast_forward(train, epochs_done=self.epoch, global_step=self.global_step,
                            steps_per_epoch=steps_per_epoch)

    def fit_phases(
        self, train: tf.data.Dataset, *, epochs: int, steps_per_epoch: int | None
    ) -> list[tuple[tf.data.Dataset, int, int, list]]:
        """``(dataset, initial_epoch, epochs, extra callbacks)`` for each
        ``fit`` that continues the run. From an epoch end: one. From a stop
        mid-epoch (one pass per epoch): first the rest of the stopped epoch
        (its remaining batches, its metric accumulators put back), then the
        epochs after it."""
        if not self.batch:
            return [(self.train_dataset(train, steps_per_epoch=steps_per_epoch), self.epoch, epochs, [])]
        if steps_per_epoch is not None:
            raise ConfigError(f"run {self.run_id}: a mid-epoch checkpoint with trainer.steps_per_epoch set")
        # Keras creates the same iterators over train.skip(n) as over train,
        # so the stopped epoch's order is the interrupted run's.
        train = fast_forward(train, epochs_done=self.epoch, global_step=self.global_step, steps_per_epoch=None)
        phases = [(train.skip(self.batch), self.epoch, self.epoch + 1,
                   [RestoreEpochMetrics(self.state.get("epoch_metrics"))])]
        if self.epoch + 1 < epochs:
            phases.append((train, self.epoch + 1, epochs, []))
        return phases

    def describe(self) -> str:
        until = f", to epoch {self.epochs}" if self.epochs else ""
        within = f" batch {self.batch}" if self.batch else ""
        return f"from epoch {self.epoch}{within} (step {self.global_step}) after {self.status}{until}"


def find_resume_point(
    run_id: str, tracking: dict[str, Any], *, epochs: int, seed: int | None, output_dir: Path
) -> ResumePoint:
    """Locate run ``run_id``'s checkpoint and check that it can continue to
    ``epochs`` epochs. Raises :class:`ConfigError`, naming the run and the
    fix, before anything touches the run."""
    if not tracking.get("enabled", True):
        raise ConfigError(f"resume={run_id} needs MLflow tracking; drop tracking=none")
    client, uri = _client(tracking)
    run = _get_run(client, uri, run_id)
    tag = run.data.tags.get(OUTPUT_DIR_TAG)
    folder = Path(tag) if tag else None
    checkpoint = folder / CHECKPOINT_DIR / CHECKPOINT_NAME if folder else None
    stopped = checkpoint.with_name(STOPPED_NAME) if checkpoint is not None else None
    if stopped is not None and not checkpoint.is_file() and stopped.is_file() and state_path(stopped).is_file():
        checkpoint = stopped  # stopped by a signal in the first epoch
    if checkpoint is None or not (checkpoint.is_file() and state_path(checkpoint).is_file()):
        folder = Path(output_dir)
        checkpoint = folder / CHECKPOINT_DIR / CHECKPOINT_NAME
        if not _download_checkpoint(client, run_id, checkpoint):
            where = f"{Path(tag) / CHECKPOINT_DIR} (tag {OUTPUT_DIR_TAG})" if tag else f"no folder (no tag {OUTPUT_DIR_TAG})"
            raise ConfigError(
                f"run {run_id} has no checkpoint to resume from: looked in {where} and in its "
                f"{CHECKPOINT_DIR}/ artifacts. A run is resumable once it has finished an epoch, or was "
                "stopped by SIGINT/SIGTERM, with callbacks.checkpoint on; start a new run instead"
            )
    checkpoint, state = _latest(checkpoint, read_state(state_path(checkpoint)))
    status = run.info.status
    if state["epoch"] >= int(epochs):
        done = f"finished all its {state['epoch']} epochs" + (" (status FINISHED)" if status == "FINISHED" else "")
        raise ConfigError(
            f"run {run_id} {done}: nothing to resume. To train it longer, add trainer.epochs=N "
            f"(N > {state['epoch']}) to resume={run_id}; otherwise start a new run"
        )
    if seed is not None and state.get("seed") is not None and int(state["seed"]) != int(seed):
        raise ConfigError(f"run {run_id}: checkpoint seed {state['seed']} != trainer.seed {seed}")
    if status == "RUNNING":
        log.warning("run %s is marked RUNNING: resume it only if no process is still training it", run_id)
    return ResumePoint(
        run_id=run_id, output_dir=folder, checkpoint=checkpoint, state=state, status=status,
        failure_reason=run.data.tags.get("failure_reason"), epochs=int(epochs),
    )


def _download_checkpoint(client, run_id: str, checkpoint: Path) -> bool:
    """Fetch ``checkpoints/last.keras`` and ``last.json`` from the run's
    artifacts into ``checkpoint``'s folder; False if the run has none."""
    names = {Path(a.path).name for a in client.list_artifacts(run_id, CHECKPOINT_DIR)}
    if not {CHECKPOINT_NAME, state_path(Path(CHECKPOINT_NAME)).name} <= names:
        return False
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    for name in (CHECKPOINT_NAME, state_path(Path(CHECKPOINT_NAME)).name):
        client.download_artifacts(run_id, f"{CHECKPOINT_DIR}/{name}", str(checkpoint.parent))
    return True


def mark_resumed(client_tracking: dict[str, Any], point: ResumePoint) -> None:
    """Tag the re-opened run ``seqlab.resumed`` (appended on each resume) and
    move the interruption's ``failure_reason`` into it."""
    client, _ = _client(client_tracking)
    run = client.get_run(point.run_id)
    note = point.describe() + (f" ({point.failure_reason})" if point.failure_reason else "")
    previous = run.data.tags.get(RESUMED_TAG)
    client.set_tag(point.run_id, RESUMED_TAG, (f"{previous}; {note}" if previous else note)[:5000])
    if "failure_reason" in run.data.tags:
        client.delete_tag(point.run_id, "failure_reason")


def _latest(checkpoint: Path, state: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """``stopped.*`` instead of ``last.*`` when a stop by signal came after
    the last epoch end (and the run reads one pass per epoch: see
    :meth:`ResumePoint.fit_phases`)."""
    stopped = Path(checkpoint).with_name(STOPPED_NAME)
    if stopped == Path(checkpoint) or not (stopped.is_file() and state_path(stopped).is_file()):
        return checkpoint, state
    later = read_state(state_path(stopped))
    if later.get("steps_per_epoch") is None and int(later["global_step"]) > int(state["global_step"]):
        return stopped, later
    return checkpoint, state


class RestoreEpochMetrics(keras.callbacks.Callback):
    """Adds the metric accumulators of the epoch a stop interrupted to those
    of its first resumed batch (Keras builds the compiled metrics only in the
    first step), so the epoch's metrics (running mean loss, ...) cover the
    whole epoch. Assumes accumulators that add up over batches: the sums and
    counts of Keras' mean metrics and of seqlab's; the step metrics of that
    first batch are logged before the addition."""

    def __init__(self, values: list | None):
        super().__init__()
        self.values = values

    def on_train_batch_end(self, batch, logs=None):
        if self.values is None:
            return
        variables = self.model.metrics_variables
        if len(variables) != len(self.values):
            log.warning("not restoring the stopped epoch's metrics: %d saved, %d in the model",
                        len(self.values), len(variables))
        else:
            for variable, value in zip(variables, self.values, strict=True):
                variable.assign(variable + np.asarray(value, dtype=variable.dtype))
        self.values = None
