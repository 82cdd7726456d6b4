"""Optimizer from config: learning-rate schedule and global-norm clipping."""

from __future__ import annotations

from typing import Any

import keras

from seqlab.errors import ConfigError
from seqlab.instantiate import build


def build_optimizer(
    optimizer_cfg: Any, schedule_cfg: Any | None, *, clipnorm: float | None, total_steps: int
) -> keras.optimizers.Optimizer:
    """``optimizer_cfg`` names a Keras optimizer (``_target_``) with a peak
    ``learning_rate``; ``schedule_cfg`` a factory called with that rate and
    ``total_steps``; ``clipnorm`` becomes Keras' ``global_clipnorm``."""
    peak = optimizer_cfg.get("learning_rate")
    if peak is None or float(peak) <= 0:
        raise ConfigError(f"optimizer.learning_rate must be positive, got {peak!r}")
    if clipnorm is not None and float(clipnorm) <= 0:
        raise ConfigError(f"trainer.clipnorm must be positive or null, got {clipnorm!r}")
    learning_rate = (
        build(schedule_cfg, learning_rate=float(peak), total_steps=int(total_steps))
        if schedule_cfg is not None
        else float(peak)
    )
    kwargs = {"learning_rate": learning_rate}
    if clipnorm is not None:
        kwargs["global_clipnorm"] = float(clipnorm)
    return build(optimizer_cfg, **kwargs)
