"""Keras callbacks every seqlab run can use, whatever its task; none imports MLflow.

Task-specific callbacks come with their data builder (the bundle's
``callbacks``): e.g. :mod:`seqlab.training.text_sampler`,
:class:`seqlab.training.stateful.ResetStatesCallback`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import keras
import numpy as np

from seqlab.errors import TrainingDiverged
from seqlab.training.context import RunCallback, RunContext
from seqlab.training.resume import (
    CHECKPOINT_DIR,
    STOPPED_NAME,
    capture_state,
    state_path,
    write_checkpoint,
)

log = logging.getLogger(__name__)



class LastGoodCheckpoint(RunCallback):
    """Saves the whole model with its optimizer to ``<output_dir>/<filename>``
    after every epoch whose loss is finite, so a diverged run keeps its last
    good state, and beside it (``last.json``) what an exact resume needs
    besides: epochs and steps done, the seed, the random states
    (:mod:`seqlab.training.resume`). Both files are replaced atomically.

    ``log_artifacts``: also log both files as the run's ``checkpoints/``
    artifacts every epoch, so ``seqlab-train resume=<run_id>`` works where the
    run's folder is gone (another machine, a server store); off by default
    (an upload of the model per epoch).

    On a stop by signal (:mod:`seqlab.training.signals`) it also writes the
    model where training stopped, mid-epoch, as ``stopped.keras`` and
    ``stopped.json`` (the same state plus ``batch``: the batches of the
    unfinished epoch done, its metric accumulators). ``resume=`` continues
    from the later of the two (from ``last.*`` when ``trainer.steps_per_epoch``
    is set).
    """

    def __init__(self, filename: str = "checkpoints/last.keras", log_artifacts: bool = False):
        super().__init__()
        self.filename = filename
        self.log_artifacts = bool(log_artifacts)
        self.path: Path | None = None
        self.saved_epochs: list[int] = []

    def bind(self, context: RunContext) -> None:
        super().bind(context)
        self.path = context.output_dir / self.filename
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, epoch, logs=None):
        if self.path is None:
            return
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            return
        seed = ((self.context.config or {}).get("trainer") or {}).get("seed")
        write_checkpoint(self.model, self.path, capture_state(self.model, epoch=epoch + 1, seed=seed))
        self.saved_epochs.append(epoch)
        self._log_artifacts(self.path)

    def on_stop_requested(self, epoch: int, batches: int) -> None:
        """A stop by signal after ``batches`` batches of epoch ``epoch`` (0-based)."""
        if self.path is None:
            return
        path = self.path.with_name(STOPPED_NAME)
        trainer = (self.context.config or {}).get("trainer") or {}
        state = {
            **capture_state(self.model, epoch=epoch, seed=trainer.get("seed")),
            "batch": int(batches),
            "steps_per_epoch": trainer.get("steps_per_epoch"),
            # The stopped epoch's metric accumulators (its running means).
            "epoch_metrics": [keras.ops.convert_to_numpy(v).tolist() for v in self.model.metrics_variables],
        }
        write_checkpoint(self.model, path, state)
        self._log_artifacts(path)

    def _log_artifacts(self, path: Path) -> None:
        if self.log_artifacts:
            for file in (path, state_path(path)):
                self.context.log_artifact(file, CHECKPOINT_DIR)


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite.

    Raises :class:`TrainingDiverged` naming the global step, so the run is
    closed as FAILED with that reason while the last good checkpoint stays.
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            # The optimizer's counter: right in a resumed run too.
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            raise TrainingDiverged(
                f"loss became {float(loss)} at step {step} (epoch batch {batch}); "
                "lower optimizer.learning_rate or set trainer.clipnorm (the last good "
                "checkpoint was kept)"
            )
