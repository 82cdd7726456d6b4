"""Resolved config -> MLflow params (dotted keys, short string values)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# MLflow limits a param value to 6000 characters; long values (prompts,
# lists) are cut, the full config is logged as config.yaml anyway.
MAX_PARAM_LENGTH = 500


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"cell": {"name": "lstm"}}}`` -> ``{"model.cell.name": "lstm"}``.

    Keys starting with ``_`` (``_target_``, ``_convert_``) are kept as they
    say which builder ran.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def to_params(config: Mapping[str, Any]) -> dict[str, str]:
    params = {}
    for key, value in flatten(config).items():
        text = "null" if value is None else str(value)
        if len(text) > MAX_PARAM_LENGTH:
            text = text[: MAX_PARAM_LENGTH - 3] + "..."
        params[key] = text
    return params
