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


class _WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to ``learning_rate`` over ``warmup_steps``, then a decay
    ``lr * shape(p)`` with ``p`` going 0 -> 1 over the remaining steps; past
    ``total_steps`` the rate stays at ``final_fraction * lr``. Subclasses give
    ``shape``."""

    def __init__(self, learning_rate: float, total_steps: int, warmup_steps: int = 100, final_fraction: float = 0.0):
        name = type(self).__name__
        if total_steps is None or total_steps <= 0:
            raise ConfigError(f"{name} needs total_steps > 0, got {total_steps}")
        if warmup_steps < 0:
            raise ConfigError(f"lr_schedule.warmup_steps must be >= 0, got {warmup_steps}")
        if not 0.0 <= final_fraction <= 1.0:
            raise ConfigError(f"lr_schedule.final_fraction must be in [0, 1], got {final_fraction}")
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        # Warmup cannot be longer than the run.
        self.warmup_steps = int(min(warmup_steps, max(total_steps - 1, 0)))
        self.final_fraction = float(final_fraction)

    def shape(self, progress):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, step):
        step = ops.cast(step, "float32")
        peak = self.learning_rate
        w = float(self.warmup_steps)
        warm = peak * (step + 1.0) / max(w, 1.0)
        progress = ops.clip((step - w) / max(self.total_steps - w, 1.0), 0.0, 1.0)
        return ops.where(step < w, warm, peak * self.shape(progress))

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "final_fraction": self.final_fraction,
        }


@keras.saving.register_keras_serializable(package="seqlab")
class WarmupCosine(_WarmupDecay):
    """Linear warmup, then cosine decay to ``final_fraction`` of the peak.

        lr(s) = lr * (s + 1) / w                             for s < w
        lr(s) = lr * (f + (1 - f) * (1 + cos(pi p)) / 2)     p = (s - w) / (S - w)
    """

    # The defaults of conf/lr_schedule/cosine.yaml (the main job's schedule).
    def __init__(self, learning_rate: float, total_steps: int, warmup_steps: int = 100,
                 final_fraction: float = 0.05):
        super().__init__(learning_rate, total_steps, warmup_steps, final_fraction)

    def shape(self, progress):
        f = self.final_fraction
        return f + (1.0 - f) * 0.5 * (1.0 + ops.cos(math.pi * progress))


@keras.saving.register_keras_serializable(package="seqlab")
class WarmupLinear(_WarmupDecay):
    """Linear warmup, then linear decay to ``final_fraction`` of the peak.

        lr(s) = lr * (s + 1) / w                             for s < w
        lr(s) = lr * (1 - (1 - f) p)                         p = (s - w) / (S - w)
    """

    def shape(self, progress):
        return 1.0 - (1.0 - self.final_fraction) * progress


@keras.saving.register_keras_serializable(package="seqlab")
class StepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Constant for ``decay_after_epochs`` epochs, then multiplied by ``factor`` every epoch.

        e      = floor(step / steps_per_epoch) + 1         (epochs counted from 1)
        lr(e)  = learning_rate * factor ** max(0, e - decay_after_epochs)

    Zaremba et al.'s small PTB model: ``learning_rate=1, factor=0.5,
    decay_after_epochs=4`` (halved from epoch 5 on); medium: ``factor=1/1.2,
    decay_after_epochs=6``. ``steps_per_epoch`` is taken as given, else as
    ``total_steps / epochs`` (the experiment supplies ``total_steps``; the
    config passes ``epochs: ${trainer.epochs}``).
    """

    def __init__(
        self,
        learning_rate: float,
        total_steps: int | None = None,
        factor: float = 0.5,
        decay_after_epochs: int = 4,
        steps_per_epoch: int | None = None,
        epochs: int | None = None,
    ):
        if not 0.0 < float(factor) <= 1.0:
            raise ConfigError(f"lr_schedule.factor must be in (0, 1], got {factor!r}")
        if not isinstance(decay_after_epochs, int) or decay_after_epochs < 0:
            raise ConfigError(f"lr_schedule.decay_after_epochs must be an integer >= 0, got {decay_after_epochs!r}")
        if steps_per_epoch is None:
            if not total_steps or not epochs:
                raise ConfigError(
                    "StepDecay needs lr_schedule.steps_per_epoch, or total_steps and "
                    "lr_schedule.epochs (e.g. epochs: ${trainer.epochs}) to derive it"
                )
            steps_per_epoch = int(total_steps) // int(epochs)
        if int(steps_per_epoch) <= 0:
            raise ConfigError(f"lr_schedule.steps_per_epoch must be positive, got {steps_per_epoch!r}")
        self.learning_rate = float(learning_rate)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.factor = float(factor)
        self.decay_after_epochs = int(decay_after_epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = None if epochs is None else int(epochs)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        epoch = ops.floor(step / float(self.steps_per_epoch)) + 1.0
        exponent = ops.maximum(epoch - float(self.decay_after_epochs), 0.0)
        return self.learning_rate * ops.power(self.factor, exponent)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "total_steps": self.total_steps,
            "factor": self.factor,
            "decay_after_epochs": self.decay_after_epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.epochs,
        }


@keras.saving.register_keras_serializable(package="seqlab")
class InverseSqrt(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup, then decay with the inverse square root of the step (Vaswani et al. 2017).

        n      = s + 1                                    (steps counted from 1)
        lr(n)  = lr * min(n / w, sqrt(w / n))

    which peaks at ``lr`` at step ``n = w``. It is the paper's
    ``d_model^-0.5 * min(n^-0.5, n * w^-1.5)`` with the peak
    ``lr = (d_model * w)^-0.5`` made explicit (the optimizer's
    ``learning_rate``), so the peak stays a config value of its own
    (``d_model=512, w=4000``: ``lr ~ 7.0e-4``). The rate keeps decaying past
    ``total_steps`` (it has no end); ``total_steps`` is accepted so the
    experiment can pass it as to every schedule.
    """

    def __init__(self, learning_rate: float, total_steps: int | None = None, warmup_steps: int = 4000):
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ConfigError(f"lr_schedule.warmup_steps must be an integer >= 1, got {warmup_steps!r}")
        if float(learning_rate) <= 0:
            raise ConfigError(f"InverseSqrt needs a positive learning_rate, got {learning_rate!r}")
        self.learning_rate = float(learning_rate)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        n = ops.cast(step, "float32") + 1.0
        w = float(self.warmup_steps)
        return self.learning_rate * ops.minimum(n / w, ops.sqrt(w / n))

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
        }
