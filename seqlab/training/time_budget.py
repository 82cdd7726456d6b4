"""``trainer.max_train_time_s``: train for a wall-time budget instead of a step count.

Equal-wall-time comparisons (an LSTM against a Transformer, a float32 run
against a bfloat16 one) need every run to stop after the same seconds of
*training*. :class:`TrainTimeBudget` measures the time spent in ``fit``'s
training batches, compilation included (a plain script pays it too), and
excluding the validation passes (which differ with the validation split, not
with the model's speed). At the end of the step that crosses the budget it
stops training; the epoch's validation pass and the test scoring run as usual,
so a budgeted run is scored like any other.

The learning-rate schedule still counts the configured steps: a cosine decay
over ``epochs x steps_per_epoch`` is cut where the budget ends. For the fairest
comparison set the step count near what the budget allows (the run logs
``train_time_s`` and the steps it reached).
"""

from __future__ import annotations

import logging
import time

import keras

log = logging.getLogger(__name__)


class TrainTimeBudget(keras.callbacks.Callback):
    """Stops ``fit`` at the end of the batch that crosses ``max_seconds`` of training.

    Args:
        max_seconds: the training-time budget in seconds (> 0), or None for
            no budget (the callback then only measures).

    Attributes:
        train_time_s: seconds spent training so far (validation excluded).
        stopped: whether the budget stopped training.

    Example:

    >>> import numpy as np, keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> budget = TrainTimeBudget(max_seconds=1e-9)   # crossed by the first step
    >>> _ = model.fit(np.ones((8, 2)), np.ones((8, 1)), batch_size=2, epochs=3,
    ...               verbose=0, callbacks=[budget])
    >>> budget.stopped, int(model.optimizer.iterations)
    (True, 1)
    """

    def __init__(self, max_seconds: float | None):
        super().__init__()
        if max_seconds is not None and not float(max_seconds) > 0:
            raise ValueError(
                f"trainer.max_train_time_s must be a positive number of seconds or null, "
                f"got {max_seconds!r}"
            )
        self.max_seconds = None if max_seconds is None else float(max_seconds)
        self.train_time_s = 0.0
        self.stopped = False
        self._since: float | None = None

    def _pause(self) -> None:
        if self._since is not None:
            self.train_time_s += time.perf_counter() - self._since
            self._since = None

    def _resume(self) -> None:
        if self._since is None:
            self._since = time.perf_counter()

    def on_train_begin(self, logs=None):
        self._resume()

    def on_train_end(self, logs=None):
        self._pause()

    # Validation passes inside fit: not training time.
    def on_test_begin(self, logs=None):
        self._pause()

    def on_test_end(self, logs=None):
        self._resume()

    def on_train_batch_end(self, batch, logs=None):
        if self.max_seconds is None or self.stopped:
            return
        elapsed = self.train_time_s + (time.perf_counter() - self._since if self._since else 0.0)
        if elapsed >= self.max_seconds:
            self.stopped = True
            self.model.stop_training = True
            step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            log.info("trainer.max_train_time_s=%g reached after %.1fs of training, at step %d",
                     self.max_seconds, elapsed, step)
