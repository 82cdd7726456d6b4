"""conf/ is the single home of defaults: every Python keyword default that a YAML also sets agrees.

For every config file whose ``_target_`` is a seqlab callable (model builders,
data builders, learning-rate schedules) and every cell config
(``conf/model/cell/*.yaml``, built as ``seqlab.layers.get_cell(name, units,
**options)``), each key present both in the YAML and, with a default, in the
callable's signature must have the same value. A YAML key the callable does
not accept (and no ``**kwargs`` takes) fails too. Skipped: Hydra's own keys
(``_target_``, ``defaults``, ...), interpolations and ``???``, and *preset
choices*: keys on which the YAML files of the same callable disagree (the
text corpora differ in name, tokenizer, prompt, ...), since no single Python
default can agree with all of them.

One test per YAML file, so a failure names the file and the keys.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from pathlib import Path

import keras
import pytest
from hydra.utils import get_object
from omegaconf import OmegaConf

import seqlab
from seqlab.layers import CELLS, Recurrent
from seqlab.layers.stacks import LAYER_OPTIONS

CONF = Path(seqlab.__file__).resolve().parent / "conf"
TARGET_GROUPS = ("model", "data", "optimizer", "lr_schedule")
MISSING = object()


def _load(path: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def _unresolved(value) -> bool:
    """An interpolation or ``???`` anywhere in the value."""
    if isinstance(value, str):
        return value == "???" or "${" in value
    if isinstance(value, dict):
        return any(_unresolved(v) for v in value.values())
    if isinstance(value, list):
        return any(_unresolved(v) for v in value)
    return False


def _target_files() -> list[Path]:
    files = []
    for group in TARGET_GROUPS:
        for path in sorted((CONF / group).glob("*.yaml")):
            target = _load(path).get("_target_", "")
            if isinstance(target, str) and target.startswith("seqlab."):
                files.append(path)
    return files


TARGET_FILES = _target_files()
CELL_FILES = sorted((CONF / "model" / "cell").glob("*.yaml"))


def _preset_keys() -> dict[str, set[str]]:
    """Per ``_target_``: the keys whose values differ between its YAML files."""
    values = defaultdict(lambda: defaultdict(list))
    for path in TARGET_FILES:
        config = _load(path)
        for key, value in config.items():
            values[config["_target_"]][key].append(value)
    counts = defaultdict(int)
    for path in TARGET_FILES:
        counts[_load(path)["_target_"]] += 1
    return {
        target: {
            key for key, seen in keys.items()
            if len(seen) < counts[target] or any(v != seen[0] for v in seen)
        }
        for target, keys in values.items()
    }


PRESET_KEYS = _preset_keys()


def _parameters(function) -> tuple[dict, bool]:
    """``{name: default or MISSING}`` and whether ``**kwargs`` is accepted."""
    params, var_kw = {}, False
    for param in inspect.signature(function).parameters.values():
        if param.kind is param.VAR_KEYWORD:
            var_kw = True
        elif param.kind is not param.VAR_POSITIONAL and param.name != "self":
            params[param.name] = MISSING if param.default is param.empty else param.default
    return params, var_kw


def _layer_init_parameters(cls) -> dict:
    """A Keras layer's ``__init__`` keywords and defaults, following ``**kwargs`` up the MRO
    (the most derived default wins) to ``keras.layers.Layer``."""
    params = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        own, var_kw = _parameters(klass.__init__)
        for name, default in own.items():
            params.setdefault(name, default)
        if not var_kw or klass is keras.layers.Layer:
            break
    return params


def _plain(value):
    """Tuples as lists, as YAML writes them."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _mismatches(config: dict, params: dict, accepts_any: bool, skip=()) -> list[str]:
    problems = []
    for key, value in config.items():
        if key.startswith("_") or key == "defaults" or key in skip or _unresolved(value):
            continue
        if key not in params:
            if not accepts_any:
                problems.append(f"{key}: in the YAML, but the callable takes no such argument")
            continue
        default = params[key]
        if default is not MISSING and _plain(default) != value:
            problems.append(f"{key}: YAML {value!r} != Python default {default!r}")
    return problems


@pytest.mark.parametrize("path", TARGET_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_python_defaults_match_the_yaml(path):
    config = _load(path)
    target = get_object(config["_target_"])
    function = target.__init__ if inspect.isclass(target) else target
    params, var_kw = _parameters(function)
    problems = _mismatches(config, params, var_kw, skip=PRESET_KEYS.get(config["_target_"], ()))
    # A defaults-list entry `- cell: lstm` selects the value of the `cell` argument.
    for entry in config.get("defaults", []):
        if isinstance(entry, dict):
            for group, option in entry.items():
                default = params.get(group, MISSING)
                name = default.get("name") if isinstance(default, dict) else default
                if default is not MISSING and name != option:
                    problems.append(f"{group}: defaults list selects {option!r} != Python default {default!r}")
    assert not problems, f"{path.relative_to(CONF)} ({config['_target_']}):\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", CELL_FILES, ids=lambda p: f"cell/{p.name}")
def test_cell_defaults_match_the_yaml(path):
    config = _load(path)
    name = config.pop("name")
    assert name == path.stem and name in CELLS, f"{path.relative_to(CONF)}: name {name!r}"
    cls, registry_defaults = CELLS[name]
    cell_params = {**_layer_init_parameters(cls), **registry_defaults}  # get_cell's effective defaults
    layer_params = _layer_init_parameters(Recurrent)
    cell_config = {k: v for k, v in config.items() if k not in LAYER_OPTIONS}
    layer_config = {k: v for k, v in config.items() if k in LAYER_OPTIONS}
    problems = _mismatches(cell_config, cell_params, accepts_any=False)
    problems += [f"(Recurrent) {p}" for p in _mismatches(layer_config, layer_params, accepts_any=False)]
    assert not problems, f"{path.relative_to(CONF)} ({cls.__name__}):\n  " + "\n  ".join(problems)


def test_the_files_are_found():
    groups = {path.parent.name for path in TARGET_FILES}
    assert {"model", "data", "lr_schedule"} <= groups, groups
    assert len(CELL_FILES) == len(CELLS)
