"""``trainer.precision``: the Keras dtype policy a run builds and trains its model under.

``float32`` (default), ``mixed_bfloat16`` (variables float32, computation
bfloat16: no loss scaling needed, bfloat16 has float32's exponent range) or
``mixed_float16`` (Keras' ``compile`` then wraps the optimizer in a
``LossScaleOptimizer``, dynamic loss scaling). Builders keep their logits in
float32 (an output layer with ``dtype="float32"``). Keras' policy is global
state: :func:`precision_policy` sets it for the run and restores the previous
one afterwards, so one run's policy never leaks into the next job of a sweep.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from seqlab.errors import ConfigError

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def check_precision(value) -> str:
    if value not in PRECISIONS:
        raise ConfigError(f"trainer.precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    return value


@contextlib.contextmanager
def precision_policy(value: str) -> Iterator[None]:
    """Sets Keras' global dtype policy to ``value`` inside the block."""
    check_precision(value)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(value)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
