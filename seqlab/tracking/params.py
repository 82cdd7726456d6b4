"""Resolved config -> MLflow params (dotted keys, short string values).

Params are what a user reads in the runs table and compares across runs: the
config values they chose. Hydra's machinery (``_target_``, ``_convert_``,
``_recursive_``, ``_partial_``), where runs are recorded (``tracking.*``),
how much is printed (``trainer.verbose``) and unset values (nulls) are left
out; the whole resolved config is logged as ``config.yaml`` beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# MLflow limits a param value to 6000 characters; long values (prompts,
# lists) are cut, the full config is logged as config.yaml anyway.
MAX_PARAM_LENGTH = 500

#: Top-level config groups that say how a run is recorded, not what it is.
EXCLUDED_PREFIXES = ("tracking.", "hydra.")
#: Single keys that change nothing in the result.
EXCLUDED_KEYS = frozenset({"trainer.verbose"})


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"cell": {"name": "lstm"}}}`` -> ``{"model.cell.name": "lstm"}``.

    Every key is kept, Hydra's ``_target_`` too; :func:`to_params` chooses.
    """
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def is_user_facing(key: str, value: Any) -> bool:
    """False for Hydra internals (any ``_x_`` segment), tracking settings,
    ``trainer.verbose``, nulls and empty mappings."""
    if value is None or (isinstance(value, Mapping) and not value):
        return False
    if any(part.startswith("_") and part.endswith("_") for part in key.split(".")):
        return False
    if key in EXCLUDED_KEYS or key.startswith(EXCLUDED_PREFIXES) or key in ("tracking", "hydra"):
        return False
    return True


def _group_names(config: Mapping[str, Any]) -> dict[str, str]:
    """``optimizer.name: Adam`` for a top-level group built from a ``_target_``
    that names no ``name`` itself: which optimizer or schedule ran is a
    user-facing choice, although only its class path says so."""
    names = {}
    for group, node in config.items():
        if isinstance(node, Mapping) and isinstance(node.get("_target_"), str) and "name" not in node:
            names[f"{group}.name"] = node["_target_"].rsplit(".", 1)[-1]
    return names


def to_params(config: Mapping[str, Any]) -> dict[str, str]:
    """The user-facing values of ``config`` as MLflow params."""
    params = {}
    for key, value in {**_group_names(config), **flatten(config)}.items():
        if not is_user_facing(key, value):
            continue
        text = str(value)
        if len(text) > MAX_PARAM_LENGTH:
            text = text[: MAX_PARAM_LENGTH - 3] + "..."
        params[key] = text
    return params
