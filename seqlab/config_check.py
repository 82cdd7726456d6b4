"""A composed config checked against what will consume it, before anything runs.

:func:`check_config` compares every key of the config with the callable that
will receive it and every value's type with what that callable expects:

- a node with a ``_target_`` (``data``, ``model``, ``optimizer``,
  ``lr_schedule``, each ``callbacks.<name>``): its keys with the callable's
  signature (a class's ``__init__``, following ``**kwargs`` up to Keras'
  ``Layer`` / optimizer base, which accept no free keywords), its values
  with each parameter's annotation or, where there is none, its default;
- ``model.cell`` (a seqlab cell spec): the options with the cell class's
  keywords (and :class:`~seqlab.layers.Recurrent`'s for the layer options);
- ``trainer`` and ``tracking`` (no ``_target_``): with the keys and value
  types of the packaged defaults, ``conf/trainer/default.yaml`` and
  ``conf/tracking/mlflow.yaml``.

Free-form values (``tracking.tags``, ``data.tokenizer_options``,
``data.sampler``) are checked as a whole (a mapping, or null), never their
entries; a type is only enforced where it is clear (``int``, ``float``,
``bool``, ``str``, lists, mappings and null); anything else passes. Every
problem is collected and raised as one :class:`~seqlab.errors.ConfigError`:

    unknown key trainer.clipnrom=1.0; did you mean trainer.clipnorm?
    optimizer.learning_rate='abc': expected a number, got a string
"""

from __future__ import annotations

import difflib
import functools
import inspect
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from seqlab.errors import ConfigError

CONF = Path(__file__).resolve().parent / "conf"

#: Nodes without a ``_target_``: checked against these packaged defaults.
DEFAULTS_FILES = {"trainer": "trainer/default.yaml", "tracking": "tracking/mlflow.yaml"}
#: Types a default's own type does not show (its comments do).
EXTRA_KINDS = {
    "trainer.clipnorm": {"null"},  # null disables clipping
    "trainer.jit_compile": {"bool"},  # auto | true | false
}
#: Top-level keys besides the config groups of train.yaml's defaults list.
TOP_LEVEL_EXTRA = {"hydra"}

NUMBER = frozenset({"int", "float"})
_DESCRIBE = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "list": "a list",
    "dict": "a mapping",
    "null": "null",
}
_GOT = {"int": "an integer", "float": "a float", "bool": "a boolean", "str": "a string",
        "list": "a list", "dict": "a mapping", "null": "null"}
_ANNOTATION_KINDS = {
    "int": {"int"},
    "float": set(NUMBER),
    "bool": {"bool"},
    "str": {"str"},
    "None": {"null"},
    "NoneType": {"null"},
    "list": {"list"},
    "tuple": {"list"},
    "Sequence": {"list"},
    "dict": {"dict"},
    "Mapping": {"dict"},
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


def _split_union(text: str) -> list[str]:
    """``"list[int] | tuple[int, ...] | None"`` -> its top-level alternatives."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char == "["
        depth -= char == "]"
        if char == "|" and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p.strip() for p in [*parts, current]]


def _annotation_kinds(annotation: Any) -> set[str] | None:
    """The value kinds an annotation allows, or None where it is not clear."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    kinds: set[str] = set()
    for part in _split_union(text):
        base = part.split("[", 1)[0].strip().removeprefix("typing.").removeprefix("collections.abc.")
        if base not in _ANNOTATION_KINDS:
            return None
        kinds |= _ANNOTATION_KINDS[base]
    return kinds


def _default_kinds(default: Any, exact_int: bool = False) -> set[str] | None:
    kind = _kind(default)
    if kind == "null":
        return None
    if kind == "int" and exact_int:  # a packaged default: an int there is a count or a seed
        return {"int"}
    if kind in NUMBER:
        return set(NUMBER)
    if kind == "str":
        # Keras takes an initializer, activation or regularizer as a name or a config mapping.
        return {"str", "dict"}
    return {kind} if kind in _DESCRIBE else None


class Parameter:
    """What a callable accepts for one keyword: the value kinds, or None (anything)."""

    def __init__(self, kinds: set[str] | None):
        self.kinds = kinds


def _param_from_signature(param: inspect.Parameter) -> Parameter:
    if param.annotation is not param.empty:
        kinds = _annotation_kinds(param.annotation)
    elif param.default is not param.empty:
        kinds = _default_kinds(param.default)
    else:
        kinds = None
    if kinds is not None and param.default is None:
        kinds = kinds | {"null"}
    return Parameter(kinds)


_POPPED = re.compile(r"""kwargs\.(?:pop|get)\(\s*["'](\w+)["']""")


def _closed_bases() -> tuple[type, ...]:
    """Classes whose ``**kwargs`` accept no free keywords (they validate them)."""
    bases: list[type] = [object]
    try:
        import keras
        from keras.src.optimizers.base_optimizer import BaseOptimizer

        bases += [keras.layers.Layer, BaseOptimizer]
    except ImportError:  # pragma: no cover - another Keras layout
        pass
    return tuple(bases)


@functools.lru_cache(maxsize=256)
def accepted(target: Any) -> tuple[dict[str, Parameter], bool]:
    """``({keyword: Parameter}, accepts any keyword)`` for a function or a class."""
    params: dict[str, Parameter] = {}
    if not inspect.isclass(target):
        var_kw = False
        for param in inspect.signature(target).parameters.values():
            if param.kind is param.VAR_KEYWORD:
                var_kw = True
            elif param.kind is not param.VAR_POSITIONAL:
                params.setdefault(param.name, _param_from_signature(param))
        return params, var_kw
    closed = _closed_bases()
    for klass in target.__mro__:
        if "__init__" not in vars(klass):
            continue
        var_kw = False
        for param in list(inspect.signature(klass.__init__).parameters.values())[1:]:
            if param.kind is param.VAR_KEYWORD:
                var_kw = True
            elif param.kind is not param.VAR_POSITIONAL:
                params.setdefault(param.name, _param_from_signature(param))
        if var_kw:
            # Keywords an __init__ takes out of **kwargs itself (LSTMCell's unit_forget_bias).
            try:
                source = inspect.getsource(klass.__init__)
            except (OSError, TypeError):
                source = ""
            for name in _POPPED.findall(source):
                params.setdefault(name, Parameter(None))
        if not var_kw or klass in closed:
            return params, False
    return params, False


def _show(value: Any) -> str:
    """A value as it would be written on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def unknown(self, path: str, key: str, value: Any, known: list[str], owner: str) -> None:
        full = f"{path}.{key}" if path else key
        message = f"unknown key {full}={_show(value)}"
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {path + '.' if path else ''}{close[0]}?"
        else:
            message += f" ({owner} takes no such key)"
        self.problems.append(message)

    def kind(self, path: str, value: Any, kinds: set[str] | None) -> None:
        if kinds is None or value == "???":
            return
        kind = _kind(value)
        if kind in kinds:
            return
        if kind == "int" and "float" in kinds:
            return
        order = [k for k in _DESCRIBE if k in kinds]
        if NUMBER <= kinds:
            order = [k for k in order if k != "int"]
        expected = " or ".join(_DESCRIBE[k] for k in order)
        got = _GOT.get(kind, kind)
        self.problems.append(f"{path}={value!r}: expected {expected}, got {got}")

    def keys(self, path: str, node: dict, params: dict[str, Parameter], any_key: bool, owner: str,
             skip: tuple[str, ...] = ()) -> None:
        for key, value in node.items():
            if not isinstance(key, str) or key.startswith("_") or key == "defaults" or key in skip:
                continue
            if key not in params:
                if not any_key:
                    self.unknown(path, key, value, sorted(params), owner)
                continue
            self.kind(f"{path}.{key}", value, params[key].kinds)


def _target_node(checker: _Checker, path: str, node: dict) -> Any:
    """Check one ``_target_`` node; returns the callable (or None if it cannot be imported)."""
    from hydra.utils import get_object

    target = node.get("_target_")
    try:
        function = get_object(str(target))
    except Exception as err:  # ImportError, AttributeError, ...
        checker.problems.append(f"{path}._target_={target} cannot be imported ({type(err).__name__}: {err})")
        return None
    params, any_key = accepted(function)
    skip = ("cell",) if path == "model" and isinstance(node.get("cell"), dict) else ()
    checker.keys(path, node, params, any_key, str(target), skip=skip)
    return function


def _cell(checker: _Checker, path: str, spec: dict) -> None:
    """``model.cell``: options to the seqlab cell, layer options to Recurrent."""
    from seqlab.layers import CELLS, Recurrent
    from seqlab.layers.stacks import BUILTIN_LAYERS, LAYER_OPTIONS

    name = spec.get("name")
    checker.kind(f"{path}.name", name, {"str"})
    if name in BUILTIN_LAYERS:
        params, _ = accepted(BUILTIN_LAYERS[name])
        checker.keys(path, spec, params, False, f"{name} ({BUILTIN_LAYERS[name].__name__})", skip=("name",))
        return
    if name not in CELLS:
        return  # the builder names the unknown cell and the known ones
    cls = CELLS[name][0]
    cell_params, _ = accepted(cls)
    layer_params, _ = accepted(Recurrent)
    params = {**cell_params, **{k: layer_params[k] for k in LAYER_OPTIONS if k in layer_params}}
    params.pop("units", None)
    checker.keys(path, spec, params, False, f"cell {name!r} ({cls.__name__} or Recurrent)", skip=("name",))


@functools.lru_cache(maxsize=8)
def _packaged_defaults(group: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF / DEFAULTS_FILES[group]), resolve=False)


def _unresolved(value: Any) -> bool:
    return isinstance(value, str) and (value == "???" or "${" in value)


def _plain_node(checker: _Checker, group: str, node: dict) -> None:
    defaults = _packaged_defaults(group)
    params = {}
    for key, default in defaults.items():
        kinds = None if _unresolved(default) else _default_kinds(default, exact_int=True)
        if kinds is not None and f"{group}.{key}" in EXTRA_KINDS:
            kinds |= EXTRA_KINDS[f"{group}.{key}"]
        params[key] = Parameter(kinds)
    checker.keys(group, node, params, False, f"{group} (conf/{DEFAULTS_FILES[group]})")


@functools.lru_cache(maxsize=1)
def _top_level_keys() -> frozenset[str]:
    root = OmegaConf.to_container(OmegaConf.load(CONF / "train.yaml"), resolve=False)
    keys = {k for k in root if k != "defaults"} | TOP_LEVEL_EXTRA
    for entry in root.get("defaults", []):
        if isinstance(entry, dict):
            keys |= {k.split("@")[-1].lstrip("/").split("/")[0].removeprefix("override ") for k in entry}
    return frozenset(keys)


def config_problems(cfg: DictConfig | dict) -> list[str]:
    """Every unknown key and wrongly typed value of a composed train config."""
    if isinstance(cfg, DictConfig):
        try:
            cfg = OmegaConf.to_container(cfg, resolve=True)
        except Exception as err:  # a broken interpolation
            return [f"the config does not resolve: {err}".splitlines()[0]]
    checker = _Checker()
    known = _top_level_keys()
    for key, value in cfg.items():
        if key not in known:
            checker.unknown("", key, value, sorted(known), "the train config")

    for group in ("data", "model", "optimizer", "lr_schedule"):
        node = cfg.get(group)
        if isinstance(node, dict) and "_target_" in node:
            _target_node(checker, group, node)
    model = cfg.get("model")
    if isinstance(model, dict) and isinstance(model.get("cell"), dict):
        _cell(checker, "model.cell", model["cell"])

    callbacks = cfg.get("callbacks")
    if isinstance(callbacks, dict):
        for name, node in callbacks.items():
            if node is None:
                continue
            if not isinstance(node, dict) or "_target_" not in node:
                checker.problems.append(f"callbacks.{name} needs a _target_ (or null to drop it), got {node!r}")
                continue
            _target_node(checker, f"callbacks.{name}", node)

    for group in DEFAULTS_FILES:
        node = cfg.get(group)
        if isinstance(node, dict):
            _plain_node(checker, group, node)
    return checker.problems


def check_config(cfg: DictConfig | dict) -> None:
    """Raise one :class:`ConfigError` listing every problem :func:`config_problems` finds."""
    problems = config_problems(cfg)
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} config problems: " + "; ".join(problems))
