"""Keras callback that sends training metrics to a :class:`TrackedRun`.

One x-axis for everything: every value is logged with step = the global
optimizer step, ``int(model.optimizer.iterations)`` (restored with the
optimizer, so a resumed run continues its axis). Per-epoch values carry an
``epoch`` metric beside them, so the MLflow UI can plot a curve against the
step or, choosing ``epoch`` as the x-axis, against the epoch.
"""

from __future__ import annotations

import math
import time

import keras


class MetricsLogger(keras.callbacks.Callback):
    """Logs epoch metrics (``loss``, ``val_loss``, ``perplexity``, ... as Keras
    names them, plus ``epoch``, ``lr``, ``<unit>_per_sec``, ``epoch_time_s``,
    ``global_step``) and, every ``log_every_n_steps`` optimizer steps,
    ``step/loss`` (the mean loss over the batches since the last log, not
    Keras' running mean since the epoch began), ``step/lr`` and
    ``step/<unit>_per_sec`` (the batches since the last log over their time;
    the window restarts at each epoch, so validation and the epoch boundary
    are not counted; a window cut to under half by the boundary logs none).

    ``unit`` and ``items_per_batch`` come from the data bundle (tokens for a
    language model, images, sequences); ``items_per_batch=None`` logs no
    throughput. ``history`` holds the logged epoch metrics.
    """

    def __init__(self, log_fn, log_every_n_steps: int = 50, items_per_batch: int | None = None,
                 unit: str = "examples"):
        super().__init__()
        self.log_fn = log_fn
        self.every = int(log_every_n_steps)
        self.items_per_batch = items_per_batch
        self.throughput_key = f"{unit}_per_sec"
        self.history: list[dict[str, float]] = []

    @property
    def global_step(self) -> int:
        """The optimizer's step counter: batches trained so far in this run,
        resumed runs included."""
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def _lr(self) -> float:
        lr = self.model.optimizer.learning_rate
        return float(keras.ops.convert_to_numpy(lr))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._window_start = self._epoch_start
        self._window_batches = 0
        self._train_time = 0.0
        self._epoch_batches = 0
        self._prev_sum, self._prev_count = 0.0, 0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        self._epoch_batches = batch + 1
        self._window_batches += 1
        self._train_time = now - self._epoch_start
        step = self.global_step
        if self.every <= 0 or step % self.every:
            return
        logs = logs or {}
        metrics = {"step/lr": self._lr()}
        if "loss" in logs:
            # Keras reports the running mean since the epoch began; recover
            # the mean over just the steps since the last log.
            total = float(logs["loss"]) * (batch + 1)
            count = batch + 1 - self._prev_count
            if count > 0:
                metrics["step/loss"] = (total - self._prev_sum) / count
            self._prev_sum, self._prev_count = total, batch + 1
        if self.items_per_batch and 2 * self._window_batches >= self.every:
            # The batches actually in this window: after an epoch boundary it
            # holds fewer than ``every`` (counting ``every`` gave 10x spikes).
            # A window of a batch or two after the boundary times mostly the
            # new epoch's input pipeline start: none is logged for it.
            elapsed = now - self._window_start
            metrics[f"step/{self.throughput_key}"] = (
                self._window_batches * self.items_per_batch / max(elapsed, 1e-9)
            )
        self._window_start, self._window_batches = now, 0
        self.log_fn({k: v for k, v in metrics.items() if math.isfinite(v)}, step)

    def on_epoch_end(self, epoch, logs=None):
        metrics = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
        metrics["epoch"] = float(epoch + 1)
        metrics["lr"] = self._lr()
        metrics["epoch_time_s"] = time.perf_counter() - self._epoch_start
        if self.items_per_batch and self._train_time > 0:
            metrics[self.throughput_key] = self._epoch_batches * self.items_per_batch / self._train_time
        step = self.global_step
        metrics["global_step"] = float(step)
        self.history.append(metrics)
        self.log_fn({k: v for k, v in metrics.items() if math.isfinite(v)}, step)


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
