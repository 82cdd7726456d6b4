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

log = logging.getLogger(__name__)


class LastGoodCheckpoint(RunCallback):
    """Saves the whole model to ``<output_dir>/<filename>`` after every epoch
    whose loss is finite, so a diverged run keeps its last good state."""

    def __init__(self, filename: str = "checkpoints/last.keras"):
        super().__init__()
        self.filename = filename
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
        self.model.save(self.path)
        self.saved_epochs.append(epoch)


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first batch whose loss is NaN or infinite.

    Raises :class:`TrainingDiverged` naming the global step, so the run is
    closed as FAILED with that reason while the last good checkpoint stays.
    """

    def __init__(self):
        super().__init__()
        self.global_step = 0

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            raise TrainingDiverged(
                f"loss became {float(loss)} at step {self.global_step} (epoch batch {batch}); "
                "lower optimizer.learning_rate or set trainer.clipnorm (the last good "
                "checkpoint was kept)"
            )
