"""Argument checks shared by the vision builders (messages name the value and the fix)."""

from __future__ import annotations

import numbers

import keras

from seqlab.errors import ConfigError
from seqlab.models._checks import check_positive

POOLINGS = ("max", "avg")


def image_input(input_shape, *, allow_unknown_size: bool = False, name: str = "images"):
    """``keras.Input`` of images ``[B, H, W, C]`` after checking ``input_shape == (H, W, C)``.

    ``H`` and ``W`` may be ``None`` when ``allow_unknown_size`` (fully
    convolutional networks ending in a global pooling).
    """
    shape = tuple(input_shape) if isinstance(input_shape, list | tuple) else None

    def ok(n, unknown_ok):
        return (n is None and unknown_ok) or (
            isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0
        )

    if (
        shape is None
        or len(shape) != 3
        or not all(ok(n, allow_unknown_size) for n in shape[:2])
        or not ok(shape[2], False)
    ):
        raise ConfigError(
            f"input_shape must be (height, width, channels) of positive integers, got "
            f"{input_shape!r}; a 28x28 grayscale image is (28, 28, 1), an RGB one (28, 28, 3)"
        )
    return keras.Input(shape=tuple(None if n is None else int(n) for n in shape), name=name)


def int_tuple(key: str, value, *, allow_empty: bool = True) -> tuple[int, ...]:
    """A sequence of positive ints (``filters``, ``hidden_units``, ...) as a tuple."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, list | tuple) or (not value and not allow_empty):
        raise ConfigError(
            f"model.{key} must be a list of positive integers, got {value!r}"
        )
    for item in value:
        check_positive(**{key: item})
    return tuple(value)


def per_stage(key: str, value, stages: int) -> tuple[int, ...]:
    """An int for every stage, or a list with one int per stage."""
    values = int_tuple(key, value)
    if len(values) == 1:
        values = values * stages
    if len(values) != stages:
        raise ConfigError(
            f"model.{key} must be one integer or one per stage ({stages}), got {value!r}"
        )
    return values


def check_choice(key: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(
            f"model.{key} must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )


def check_num_classes(num_classes) -> int:
    """``num_classes`` as an int (a NumPy integer from a data bundle passes)."""
    if isinstance(num_classes, numbers.Integral) and not isinstance(num_classes, bool):
        num_classes = int(num_classes)
    check_positive(num_classes=num_classes)
    return num_classes


def logits_dtype() -> str | None:
    """``"float32"`` under a mixed-precision policy (the loss and softmax stay in float32),
    else ``None``: the global policy (float32, or float64 in the exactness tests)."""
    compute = keras.config.dtype_policy().compute_dtype
    return "float32" if compute in ("float16", "bfloat16") else None


def check_activation(key: str, activation) -> None:
    """A Keras activation name (or callable); else ConfigError naming ``model.<key>``."""
    try:
        keras.activations.get(activation)
    except (ValueError, TypeError):
        raise ConfigError(
            f"model.{key}: unknown Keras activation {activation!r} (e.g. relu, tanh, gelu)"
        ) from None
