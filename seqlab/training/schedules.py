"""Learning-rate schedules, as Keras ``LearningRateSchedule`` objects.

Each factory takes the optimizer's peak ``learning_rate`` and the run's
``total_steps`` (epochs x steps per epoch), which the experiment supplies, so
configs only state the shape of the schedule.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from seqlab.errors import ConfigError


def constant(learning_rate: float, total_steps: int | None = None) -> float:
    """No schedule: the optimizer keeps ``learning_rate``."""
    return float(learning_rate)


@keras.saving.register_keras_serializable(package="seqlab")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to ``learning_rate``, then cosine decay to ``final_fraction`` of it.

        lr(s) = lr * s / w                                   for s < w
        lr(s) = lr * (f + (1 - f) * (1 + cos(pi p)) / 2)     p = (s - w) / (S - w)

    Past ``total_steps`` the rate stays at ``f * lr``.
    """

    def __init__(self, learning_rate: float, total_steps: int, warmup_steps: int = 0, final_fraction: float = 0.0):
        if total_steps is None or total_steps <= 0:
            raise ConfigError(f"WarmupCosine needs total_steps > 0, got {total_steps}")
        if warmup_steps < 0:
            raise ConfigError(f"lr_schedule.warmup_steps must be >= 0, got {warmup_steps}")
        if not 0.0 <= final_fraction <= 1.0:
            raise ConfigError(f"lr_schedule.final_fraction must be in [0, 1], got {final_fraction}")
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        # Warmup cannot be longer than the run.
        self.warmup_steps = int(min(warmup_steps, max(total_steps - 1, 0)))
        self.final_fraction = float(final_fraction)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.learning_rate
        w = float(self.warmup_steps)
        warm = peak * (step + 1.0) / max(w, 1.0)
        progress = ops.clip((step - w) / max(self.total_steps - w, 1.0), 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        decayed = peak * (self.final_fraction + (1.0 - self.final_fraction) * cosine)
        return ops.where(step < w, warm, decayed)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "final_fraction": self.final_fraction,
        }
