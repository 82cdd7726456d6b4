"""The search space of an ``hparams_search`` preset: config keys -> Optuna distributions.

A preset declares, per config key (a dotted value key such as
``optimizer.learning_rate``, or a config group such as ``model/cell``)::

    params:
      optimizer.learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      model.hidden_size: {type: categorical, choices: [64, 128, 256]}
      model.num_layers: {type: int, low: 1, high: 3}
      model.dropout: {type: float, low: 0.0, high: 0.3, step: 0.05}

Each trial draws one value per key and becomes Hydra overrides
(``optimizer.learning_rate=0.00123``), so Hydra composes the trial's config
as it would for ``seqlab-train``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from seqlab.errors import ConfigError

TYPES = ("float", "int", "categorical")
_FIELDS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}


@dataclasses.dataclass(frozen=True)
class Param:
    """One searched config key and its distribution."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log,
                                     step=int(self.step or 1))
        return trial.suggest_categorical(self.key, list(self.choices))

    def probe_values(self) -> list[Any]:
        """Values that must compose (the range ends, every choice)."""
        if self.type == "categorical":
            return list(self.choices)
        return [self.low, self.high]


def _number(preset: str, key: str, field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"hparams_search={preset}: params.{key}.{field} must be a number, got {value!r}")
    return value


def parse_param(preset: str, key: str, spec: Any) -> Param:
    where = f"hparams_search={preset}: params.{key}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a mapping such as {{type: float, low: 0.1, high: 1.0}}, got {spec!r}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise ConfigError(f"{where}: unknown distribution type {kind!r} (use one of {', '.join(TYPES)})")
    unknown = sorted(set(spec) - _FIELDS[kind])
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)} for type {kind} "
                          f"(allowed: {', '.join(sorted(_FIELDS[kind]))})")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ConfigError(f"{where}: a categorical needs a non-empty list 'choices', got {choices!r}")
        for choice in choices:
            if choice is not None and not isinstance(choice, (bool, int, float, str)):
                raise ConfigError(f"{where}: choice {choice!r} is not a scalar (number, string, bool or null)")
        return Param(key, kind, choices=tuple(choices))
    for field in ("low", "high"):
        if field not in spec:
            raise ConfigError(f"{where}: type {kind} needs '{field}'")
    low, high = _number(preset, key, "low", spec["low"]), _number(preset, key, "high", spec["high"])
    if kind == "int" and not all(float(v).is_integer() for v in (low, high)):
        raise ConfigError(f"{where}: type int needs integer low/high, got {low!r}, {high!r}")
    if low > high:
        raise ConfigError(f"{where}: low {low!r} is above high {high!r}")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise ConfigError(f"{where}: log: true needs low > 0, got {low!r}")
    step = spec.get("step")
    if step is not None:
        step = _number(preset, key, "step", step)
        if step <= 0 or log:
            raise ConfigError(f"{where}: step must be > 0 and cannot be combined with log: true")
    return Param(key, kind, low=low, high=high, log=log, step=step)


def parse_space(preset: str, params: Any) -> list[Param]:
    """The preset's ``params`` node -> parameters, with one clear error per bad entry."""
    if not isinstance(params, Mapping) or not params:
        raise ConfigError(f"hparams_search={preset}: 'params' must map config keys to distributions, got {params!r}")
    return [parse_param(preset, str(key), spec) for key, spec in params.items()]


def format_value(value: Any) -> str:
    """A value as Hydra's override grammar reads it back unchanged."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if text and all(c.isalnum() or c in "_-./:" for c in text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def to_overrides(values: Mapping[str, Any]) -> list[str]:
    return [f"{key}={format_value(value)}" for key, value in values.items()]


def short(value: Any) -> str:
    """A value for a run name: floats to 3 significant digits."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return format_value(value)
