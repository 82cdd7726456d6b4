"""Argument checks shared by the builders (messages name the config key)."""

from __future__ import annotations

from seqlab.errors import ConfigError


def check_positive(**values) -> None:
    """Raise ``ConfigError`` naming ``model.<key>`` unless every value is a positive int."""
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"model.{key} must be a positive integer, got {value!r}")


def check_rate(key: str, rate) -> None:
    """Raise ``ConfigError`` naming ``model.<key>`` unless ``0 <= rate < 1``."""
    if not 0.0 <= float(rate) < 1.0:
        raise ConfigError(f"model.{key} must be in [0, 1), got {rate!r}")
