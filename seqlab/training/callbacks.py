"""Keras callbacks every seqlab run can use; none of them imports MLflow."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import keras
import numpy as np

from seqlab.errors import TrainingDiverged
from seqlab.training.context import RunContext

log = logging.getLogger(__name__)


class LastGoodCheckpoint(keras.callbacks.Callback):
    """Saves the whole model to ``<output_dir>/<filename>`` after every epoch
    whose loss is finite, so a diverged run keeps its last good state."""

    def __init__(self, filename: str = "checkpoints/last.keras"):
        super().__init__()
        self.filename = filename
        self.path: Path | None = None
        self.saved_epochs: list[int] = []

    def bind(self, context: RunContext) -> None:
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


class TextSampler(keras.callbacks.Callback):
    """Generates text from a fixed prompt at the end of every N epochs and at the
    end of training; appends it to ``samples.txt`` and logs that file."""

    def __init__(
        self,
        prompt: str = "\n",
        length: int = 300,
        temperature: float = 0.8,
        every_n_epochs: int = 1,
        seed: int = 0,
        strategy: str = "temperature",
        top_k: int | None = None,
        top_p: float | None = None,
    ):
        super().__init__()
        self.prompt = prompt
        self.length = int(length)
        self.every_n_epochs = int(every_n_epochs)
        self.seed = int(seed)
        self.options = {"strategy": strategy, "temperature": temperature, "top_k": top_k, "top_p": top_p}
        self.context: RunContext | None = None
        self.samples: list[tuple[str, str]] = []

    def bind(self, context: RunContext) -> None:
        self.context = context

    @property
    def tokenizer(self):
        return self.context.bundle.tokenizer if self.context else None

    def sample(self) -> str:
        from seqlab.generation import generate_text

        options = {k: v for k, v in self.options.items() if v is not None}
        return generate_text(
            self.model, self.tokenizer, self.prompt, max_new_tokens=self.length, seed=self.seed, **options
        )

    def _record(self, label: str) -> str:
        text = self.sample()
        self.samples.append((label, text))
        path = self.context.output_dir / "samples.txt"
        with path.open("a", encoding="utf-8") as f:
            f.write(f"=== {label} ===\n{self.prompt}{text}\n\n")
        self.context.log_artifact(path, None)
        return text

    def on_epoch_end(self, epoch, logs=None):
        if self.tokenizer is None or self.every_n_epochs <= 0:
            return
        if (epoch + 1) % self.every_n_epochs == 0:
            self._record(f"epoch {epoch + 1}")

    def final_sample(self) -> str | None:
        """The end-of-run sample the experiment prints."""
        if self.tokenizer is None:
            return None
        return self._record("final")
