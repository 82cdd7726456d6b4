"""Config node -> object, with seqlab's own errors kept readable.

Only callables from known packages may be instantiated from a config: a
``_target_`` is a dotted import path, so a config from elsewhere could
otherwise run any function (``os.system``). The allowed prefixes are
:data:`ALLOWED_TARGET_PREFIXES`; your own package is added with the
environment (not the config, which is what is being guarded):
``SEQLAB_ALLOWED_TARGETS=mypkg,otherpkg.models``.
"""

from __future__ import annotations

import os
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig

from seqlab.errors import ConfigError, SeqlabError

#: Packages whose callables a config may name: seqlab itself, Keras (optimizers,
#: layers, losses), TensorFlow, Optuna (samplers, pruners) and Hydra.
ALLOWED_TARGET_PREFIXES = ("seqlab", "keras", "tensorflow", "optuna", "hydra")
ENV_ALLOWED = "SEQLAB_ALLOWED_TARGETS"


def allowed_prefixes() -> tuple[str, ...]:
    extra = [p.strip() for p in os.environ.get(ENV_ALLOWED, "").split(",") if p.strip()]
    return (*ALLOWED_TARGET_PREFIXES, *extra)


def _is_allowed(target: str, prefixes: tuple[str, ...]) -> bool:
    return any(target == p or target.startswith(p + ".") for p in prefixes)


def _targets(node: Any, path: str):
    """``(full key, value)`` of every ``_target_`` under ``node``."""
    if isinstance(node, DictConfig | dict):
        items = node.items_ex(resolve=False) if isinstance(node, DictConfig) else node.items()
        for key, value in items:
            key_path = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield key_path, value
            else:
                yield from _targets(value, key_path)
    elif isinstance(node, ListConfig | list | tuple):
        for i, value in enumerate(node):
            yield from _targets(value, f"{path}[{i}]")


def _path_of(node: Any) -> str:
    if isinstance(node, DictConfig):
        try:
            return node._get_full_key(None) or ""
        except Exception:  # pragma: no cover - a detached node
            return ""
    return ""


def check_targets(node: Any, path: str | None = None) -> None:
    """Refuse a ``_target_`` outside the allowed packages, naming its key.

    >>> check_targets({"model": {"_target_": "seqlab.models.build_rnn_lm"}})
    >>> check_targets({"data": {"_target_": "os.system"}})
    Traceback (most recent call last):
    ...
    seqlab.errors.ConfigError: data._target_='os.system' is not allowed: ...
    """
    prefixes = allowed_prefixes()
    for key, target in _targets(node, _path_of(node) if path is None else path):
        if not isinstance(target, str) or not _is_allowed(target, prefixes):
            raise ConfigError(
                f"{key}={target!r} is not allowed: a config may instantiate only callables "
                f"from {', '.join(p + '.*' for p in prefixes)}. To allow your own package, "
                f"set the environment variable {ENV_ALLOWED} (e.g. {ENV_ALLOWED}=mypkg)"
            )


def build(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` of an allowed ``_target_``; a seqlab error
    raised by the builder reaches the user as itself, not wrapped in Hydra's
    InstantiationException."""
    check_targets(node)
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, SeqlabError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise
