"""Keras callback that sends training metrics to a :class:`TrackedRun`."""

from __future__ import annotations

import math
import time

import keras

# Epoch-level values are logged with step = epoch (1-based); step-level values
# under "step/<name>" with step = global optimizer step.


class MetricsLogger(keras.callbacks.Callback):
    """Logs epoch metrics (``loss``, ``val_loss``, ``perplexity``, ... as Keras
    names them, plus ``lr`` and ``<unit>_per_sec``) and, every
    ``log_every_n_steps``, ``step/loss`` (the mean loss over those steps, not
    Keras' running mean since the epoch began), ``step/lr`` and
    ``step/<unit>_per_sec``.

    ``unit`` and ``items_per_batch`` come from the data bundle (tokens for a
    language model, images, sequences); ``items_per_batch=None`` logs no
    throughput.
    """

    def __init__(self, log_fn, log_every_n_steps: int = 50, items_per_batch: int | None = None,
                 unit: str = "examples"):
        super().__init__()
        self.log_fn = log_fn
        self.every = int(log_every_n_steps)
        self.items_per_batch = items_per_batch
        self.throughput_key = f"{unit}_per_sec"
        self.global_step = 0
        self.history: list[dict[str, float]] = []

    def _lr(self) -> float:
        lr = self.model.optimizer.learning_rate
        return float(keras.ops.convert_to_numpy(lr))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._window_start = self._epoch_start
        self._train_time = 0.0
        self._epoch_batches = 0
        self._prev_sum, self._prev_count = 0.0, 0

    def on_train_batch_end(self, batch, logs=None):
        self.global_step += 1
        self._epoch_batches = batch + 1
        now = time.perf_counter()
        self._train_time = now - self._epoch_start
        if self.every <= 0 or self.global_step % self.every:
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
        if self.items_per_batch:
            elapsed = now - self._window_start
            metrics[f"step/{self.throughput_key}"] = self.every * self.items_per_batch / max(elapsed, 1e-9)
        self._window_start = now
        self.log_fn({k: v for k, v in metrics.items() if math.isfinite(v)}, self.global_step)

    def on_epoch_end(self, epoch, logs=None):
        metrics = {k: float(v) for k, v in (logs or {}).items() if _is_number(v)}
        metrics["lr"] = self._lr()
        metrics["epoch_time_s"] = time.perf_counter() - self._epoch_start
        if self.items_per_batch and self._train_time > 0:
            metrics[self.throughput_key] = self._epoch_batches * self.items_per_batch / self._train_time
        metrics["global_step"] = float(self.global_step)
        self.history.append(metrics)
        self.log_fn({k: v for k, v in metrics.items() if math.isfinite(v)}, epoch + 1)


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
