"""Optimizer from config: learning-rate schedule, global-norm clipping and
gradient accumulation."""

from __future__ import annotations

import math
from typing import Any

import keras

from seqlab.errors import ConfigError
from seqlab.instantiate import build


@keras.saving.register_keras_serializable(package="seqlab")
class PerUpdate(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule over optimizer *updates* while Keras counts micro-batches.

    With ``gradient_accumulation_steps=k`` a Keras optimizer calls its
    schedule with the micro-batch counter, so a warmup of 100 would end after
    100 micro-batches (100 / k updates). This wrapper calls the schedule with
    ``step // k``: warmup, decay and ``total_steps`` keep meaning updates.

    >>> inner = keras.optimizers.schedules.PiecewiseConstantDecay([1], [1.0, 0.5])
    >>> [float(PerUpdate(inner, 4)(step)) for step in (0, 3, 4, 7, 8)]
    [1.0, 1.0, 1.0, 1.0, 0.5]
    """

    def __init__(self, schedule, accumulate_steps: int):
        self.schedule = schedule
        self.accumulate_steps = int(accumulate_steps)

    def __call__(self, step):
        return self.schedule(keras.ops.floor_divide(step, self.accumulate_steps))

    def get_config(self):
        return {
            "schedule": keras.saving.serialize_keras_object(self.schedule),
            "accumulate_steps": self.accumulate_steps,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


def build_optimizer(
    optimizer_cfg: Any,
    schedule_cfg: Any | None,
    *,
    clipnorm: float | None,
    total_steps: int,
    accumulate_steps: int | None = None,
) -> keras.optimizers.Optimizer:
    """``optimizer_cfg`` names a Keras optimizer (``_target_``) with a peak
    ``learning_rate``; ``schedule_cfg`` a factory called with that rate and the
    number of optimizer updates; ``clipnorm`` becomes Keras' ``global_clipnorm``
    (applied to the accumulated gradient).

    ``accumulate_steps=k`` (``trainer.accumulate_steps``): the gradients of
    ``k`` micro-batches are averaged into one update (Keras'
    ``gradient_accumulation_steps``), which equals one ``k``-times larger
    batch for a model without batch statistics; ``total_steps`` counts
    micro-batches and the schedule sees updates (:class:`PerUpdate`).
    """
    peak = optimizer_cfg.get("learning_rate")
    try:
        peak_value = float(peak)
    except (TypeError, ValueError):
        peak_value = math.nan
    if not peak_value > 0 or not math.isfinite(peak_value):
        raise ConfigError(f"optimizer.learning_rate must be a positive number, got {peak!r}")
    if clipnorm is not None and float(clipnorm) <= 0:
        raise ConfigError(f"trainer.clipnorm must be positive or null, got {clipnorm!r}")
    k = 1 if accumulate_steps in (None, 1) else int(accumulate_steps)
    if k < 1:
        raise ConfigError(f"trainer.accumulate_steps must be a positive integer or null, got {accumulate_steps!r}")
    updates = max(1, int(total_steps) // k)
    learning_rate: Any = peak_value
    if schedule_cfg is not None:
        learning_rate = build(schedule_cfg, learning_rate=peak_value, total_steps=updates)
        if k > 1 and isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
            learning_rate = PerUpdate(learning_rate, k)
    kwargs: dict[str, Any] = {"learning_rate": learning_rate}
    if clipnorm is not None:
        kwargs["global_clipnorm"] = float(clipnorm)
    if k > 1:
        kwargs["gradient_accumulation_steps"] = k
    return build(optimizer_cfg, **kwargs)
